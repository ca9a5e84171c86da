//! SK assembly (RFC 7296 §3.14) and SKF fragmentation/reassembly (RFC 7383) over the
//! `SkCipher` trait: with the real AEAD and CBC+HMAC transforms from `ike::crypto`, and
//! with a toy cipher that makes the framing visible.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test helpers: a failure is a test failure

mod wire_common;

use ike::crypto::{CryptoError, SkCipher, sk_cipher};
use ike::wire::*;
use wire_common::*;

fn gcm() -> Box<dyn SkCipher> {
    sk_cipher(EncrId::AES_GCM_16, 256, IntegId::NONE, &[7u8; 36], &[]).unwrap()
}

fn cbc() -> Box<dyn SkCipher> {
    sk_cipher(
        EncrId::AES_CBC,
        128,
        IntegId::HMAC_SHA2_256_128,
        &[8u8; 16],
        &[9u8; 32],
    )
    .unwrap()
}

fn ciphers() -> Vec<Box<dyn SkCipher>> {
    vec![gcm(), cbc(), Box::new(ToyCipher { key: 0x5a })]
}

#[test]
fn encrypt_then_decrypt_returns_the_inner_chain() {
    let h = header(ExchangeType::IKE_AUTH, Flags::INITIATOR, 1);
    for c in ciphers() {
        let inner = ike_auth_inner();
        let raw = encrypt_message(&h, &inner, c.as_ref()).unwrap();
        let v = HeaderView::new_checked(&raw[..]).unwrap();
        assert_eq!(v.next_payload(), PayloadType::SK);
        assert_eq!(v.length() as usize, raw.len());
        assert_eq!(v.message_id(), 1);
        // SK generic header: first inner type, no critical bit, length to the end.
        assert_eq!(raw[28], PayloadType::IDI.0);
        assert_eq!(raw[29], 0);
        assert_eq!(
            u16::from_be_bytes([raw[30], raw[31]]) as usize,
            raw.len() - 28
        );
        // The outer layer decodes as a plain message too.
        let outer = Message::decode(&raw).unwrap();
        assert!(
            matches!(&outer.payloads[..], [Payload::Sk(s)] if s.first_inner == PayloadType::IDI)
        );
        assert_eq!(outer.encode(), raw);

        let (hd, payloads) = decrypt_message(&raw, c.as_ref()).unwrap();
        assert_eq!(payloads, inner);
        assert_eq!(hd.spi_i, h.spi_i);
        assert_eq!(hd.exchange, ExchangeType::IKE_AUTH);
    }
}

#[test]
fn empty_inner_chain_is_an_empty_informational() {
    let h = header(ExchangeType::INFORMATIONAL, Flags::RESPONSE, 4);
    let c = gcm();
    let raw = encrypt_message(&h, &[], c.as_ref()).unwrap();
    assert_eq!(raw[28], 0, "no first inner payload");
    let (_, payloads) = decrypt_message(&raw, c.as_ref()).unwrap();
    assert!(payloads.is_empty());
}

#[test]
fn every_octet_is_integrity_protected() {
    let h = header(ExchangeType::CREATE_CHILD_SA, Flags::INITIATOR, 2);
    for c in [gcm(), cbc()] {
        let raw = encrypt_message(&h, &create_child_sa_inner(), c.as_ref()).unwrap();
        for i in 0..raw.len() {
            let mut t = raw.clone();
            t[i] ^= 0x01;
            // Flipping the low bit of the version octet gives minor version 1, which is
            // still accepted; the header is in the AAD, so the ICV must still fail.
            let e = decrypt_message(&t, c.as_ref()).unwrap_err();
            for p in [Protection::Unprotected, Protection::IntegrityVerified] {
                assert_eq!(e.notify(p), ResponderAction::Drop, "octet {i}: {e:?}");
            }
        }
    }
}

#[test]
fn decrypt_rejects_messages_that_are_not_one_sk_payload() {
    let c = ToyCipher { key: 1 };
    // No SK at all.
    let plain = ike_sa_init_request().encode();
    let e = decrypt_message(&plain, &c).unwrap_err();
    assert_eq!(
        e.root(),
        &DecodeError::ExpectedSk {
            found: PayloadType::SA
        }
    );
    // Found before the integrity check: dropped even by a caller that assumes the
    // error came from verified plaintext.
    assert_eq!(
        e.notify(Protection::IntegrityVerified),
        ResponderAction::Drop
    );
    // A payload before SK.
    let before = Message {
        header: header(ExchangeType::IKE_AUTH, 0, 1),
        payloads: vec![
            Payload::VendorId(VendorIdPayload { data: vec![1] }),
            Payload::Sk(SkPayload {
                first_inner: PayloadType::NONE,
                data: vec![0; 16],
            }),
        ],
    }
    .encode();
    assert!(matches!(
        decrypt_message(&before, &c).unwrap_err().root(),
        DecodeError::ExpectedSk { .. }
    ));
    // SK whose length stops short of the end of the message.
    let mut short = encrypt_message(&header(ExchangeType::IKE_AUTH, 0, 1), &[], &c).unwrap();
    short[31] -= 4;
    let e = decrypt_message(&short, &c).unwrap_err();
    assert_eq!(e, DecodeError::Unverified(Box::new(DecodeError::SkNotLast)));
    assert_eq!(
        e.notify(Protection::IntegrityVerified),
        ResponderAction::Drop
    );
    // SK whose length runs past the end.
    let mut long = encrypt_message(&header(ExchangeType::IKE_AUTH, 0, 1), &[], &c).unwrap();
    long[31] += 1;
    assert!(matches!(
        decrypt_message(&long, &c).unwrap_err().root(),
        DecodeError::PayloadLengthPastEnd { .. }
    ));
    // A fragment is not an SK message.
    let frags = encrypt_fragments(
        &header(ExchangeType::IKE_AUTH, 0, 1),
        &ike_auth_inner(),
        &c,
        1280,
    )
    .unwrap();
    assert!(matches!(
        decrypt_message(&frags[0], &c).unwrap_err().root(),
        DecodeError::ExpectedSk {
            found: PayloadType::SKF
        }
    ));
}

/// A cipher that lies about its output length.
#[derive(Debug)]
struct ShortCipher;
impl SkCipher for ShortCipher {
    fn sealed_len(&self, n: usize) -> usize {
        n + 16
    }
    fn seal(&self, p: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        out.extend_from_slice(p);
        Ok(())
    }
    fn open(&self, _: &[u8], body: &[u8]) -> Result<Vec<u8>, CryptoError> {
        Ok(body.to_vec())
    }
}

#[test]
fn encrypt_checks_the_cipher_and_the_inner_chain() {
    let h = header(ExchangeType::IKE_AUTH, 0, 1);
    assert!(matches!(
        encrypt_message(&h, &ike_auth_inner(), &ShortCipher),
        Err(EncodeError::CipherLengthMismatch { .. })
    ));
    let nested = [Payload::Sk(SkPayload {
        first_inner: PayloadType::NONE,
        data: vec![],
    })];
    assert_eq!(
        encrypt_message(&h, &nested, &ToyCipher { key: 0 }),
        Err(EncodeError::MisplacedEncryptedPayload)
    );
}

fn big_inner() -> Vec<Payload> {
    let mut inner = ike_auth_inner();
    inner.push(Payload::Cert(CertPayload {
        encoding: CertEncoding::X509_SIGNATURE,
        data: (0..3000u32).map(|i| i as u8).collect(),
    }));
    inner
}

fn fragment_numbers(frag: &[u8]) -> (u8, u16, u16) {
    (
        frag[28],
        u16::from_be_bytes([frag[32], frag[33]]),
        u16::from_be_bytes([frag[34], frag[35]]),
    )
}

#[test]
fn fragments_fit_the_limit_and_reassemble_in_any_order() {
    let h = header(ExchangeType::IKE_AUTH, Flags::INITIATOR, 1);
    for c in ciphers() {
        let inner = big_inner();
        let frags = encrypt_fragments(&h, &inner, c.as_ref(), 576).unwrap();
        let n = frags.len();
        assert!(n >= 6, "{n} fragments");
        for (i, f) in frags.iter().enumerate() {
            assert!(f.len() <= 576);
            let v = HeaderView::new_checked(&f[..]).unwrap();
            assert_eq!(v.next_payload(), PayloadType::SKF);
            assert_eq!(v.message_id(), 1);
            let (next, number, total) = fragment_numbers(f);
            assert_eq!(number as usize, i + 1);
            assert_eq!(total as usize, n);
            // Only fragment 1 names the first inner payload (RFC 7383 §2.5).
            assert_eq!(next, if i == 0 { PayloadType::IDI.0 } else { 0 });
            // Each fragment is also a valid plain message (SKF alone).
            assert_eq!(Message::decode(f).unwrap().encode(), *f);
        }
        // Every fragment but the last is filled to the limit (or as near as padding
        // allows: within one cipher block).
        assert!(frags[0].len() > 576 - 16);

        for order in [
            (0..n).collect::<Vec<_>>(),
            (0..n).rev().collect(),
            (0..n).map(|i| (i * 5 + 3) % n).collect(),
        ] {
            let mut r = Reassembler::new();
            let mut done = None;
            for (k, &i) in order.iter().enumerate() {
                // Duplicates are ignored without effect.
                if k > 0 {
                    assert_eq!(
                        r.handle_fragment(&frags[order[k - 1]], c.as_ref()).unwrap(),
                        FragmentOutcome::Duplicate
                    );
                }
                match r.handle_fragment(&frags[i], c.as_ref()).unwrap() {
                    FragmentOutcome::Stored { received, total } => {
                        assert_eq!(received as usize, k + 1);
                        assert_eq!(total as usize, n);
                    }
                    FragmentOutcome::Complete { header, payloads } => {
                        assert_eq!(k + 1, n);
                        assert_eq!(header.message_id, 1);
                        done = Some(payloads);
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            assert_eq!(done.unwrap(), inner);
            assert_eq!(r.pending_messages(), 0);
        }
    }
}

#[test]
fn one_fragment_for_a_small_message() {
    let h = header(ExchangeType::IKE_AUTH, 0, 3);
    let c = gcm();
    let frags = encrypt_fragments(&h, &[], c.as_ref(), 1280).unwrap();
    assert_eq!(frags.len(), 1);
    assert_eq!(fragment_numbers(&frags[0]), (0, 1, 1));
    let mut r = Reassembler::new();
    assert_eq!(
        r.handle_fragment(&frags[0], c.as_ref()).unwrap(),
        FragmentOutcome::Complete {
            header: HeaderView::new_checked(&frags[0][..]).unwrap().header(),
            payloads: vec![]
        }
    );
}

#[test]
fn fragmentation_limits() {
    let h = header(ExchangeType::IKE_AUTH, 0, 3);
    let c = gcm();
    assert_eq!(
        encrypt_fragments(&h, &big_inner(), c.as_ref(), 36 + 24),
        Err(EncodeError::DatagramTooSmall {
            max_datagram_len: 60
        })
    );
    assert!(matches!(
        encrypt_fragments(&h, &big_inner(), c.as_ref(), 100),
        Err(EncodeError::TooManyFragments { .. })
    ));
}

#[test]
fn forged_fragments_change_nothing() {
    let h = header(ExchangeType::IKE_AUTH, 0, 1);
    let c = gcm();
    let frags = encrypt_fragments(&h, &big_inner(), c.as_ref(), 1000).unwrap();
    let mut r = Reassembler::new();
    assert!(matches!(
        r.handle_fragment(&frags[0], c.as_ref()).unwrap(),
        FragmentOutcome::Stored { received: 1, .. }
    ));
    // A forged fragment 2 (bad ICV) is rejected and not stored.
    let mut forged = frags[1].clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert!(matches!(
        r.handle_fragment(&forged, c.as_ref()),
        Err(DecodeError::Crypto(CryptoError::IntegrityCheckFailed))
    ));
    // A forged fragment announcing more fragments must not restart reassembly.
    let mut bigger = frags[1].clone();
    bigger[35] += 1;
    assert!(r.handle_fragment(&bigger, c.as_ref()).is_err());
    // The genuine fragment 2 is still new, and the rest complete the message.
    let mut outcome = None;
    for f in &frags[1..] {
        outcome = Some(r.handle_fragment(f, c.as_ref()).unwrap());
    }
    assert!(matches!(outcome, Some(FragmentOutcome::Complete { .. })));
}

#[test]
fn a_larger_total_restarts_and_a_smaller_one_is_discarded() {
    // RFC 7383 §2.6: the sender may re-fragment a retransmission with smaller fragments.
    let h = header(ExchangeType::IKE_AUTH, 0, 1);
    let c = gcm();
    let coarse = encrypt_fragments(&h, &big_inner(), c.as_ref(), 1500).unwrap();
    let fine = encrypt_fragments(&h, &big_inner(), c.as_ref(), 600).unwrap();
    assert!(fine.len() > coarse.len());
    let mut r = Reassembler::new();
    r.handle_fragment(&coarse[0], c.as_ref()).unwrap();
    r.handle_fragment(&fine[1], c.as_ref()).unwrap();
    // The coarse fragments are now stale.
    assert_eq!(
        r.handle_fragment(&coarse[1], c.as_ref()).unwrap(),
        FragmentOutcome::Discarded
    );
    let mut last = None;
    for (i, f) in fine.iter().enumerate() {
        if i != 1 {
            last = Some(r.handle_fragment(f, c.as_ref()).unwrap());
        }
    }
    match last.unwrap() {
        FragmentOutcome::Complete { payloads, .. } => assert_eq!(payloads, big_inner()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn reassembly_limits_bound_memory() {
    let c = gcm();
    let h = header(ExchangeType::IKE_AUTH, 0, 1);
    let frags = encrypt_fragments(&h, &big_inner(), c.as_ref(), 400).unwrap();

    let mut few = Reassembler::with_limits(ReassemblyLimits {
        max_fragments: 4,
        ..ReassemblyLimits::default()
    });
    assert_eq!(
        few.handle_fragment(&frags[0], c.as_ref()),
        Err(DecodeError::ReassemblyLimit {
            reason: "too many fragments"
        })
    );

    let mut small = Reassembler::with_limits(ReassemblyLimits {
        max_message_len: 1000,
        ..ReassemblyLimits::default()
    });
    let mut err = None;
    for f in &frags {
        if let Err(e) = small.handle_fragment(f, c.as_ref()) {
            err = Some(e);
            break;
        }
    }
    assert_eq!(
        err.unwrap().notify(Protection::IntegrityVerified),
        ResponderAction::Drop
    );
    assert_eq!(
        small.pending_messages(),
        0,
        "the message's fragments are dropped"
    );

    let mut two = Reassembler::with_limits(ReassemblyLimits {
        max_messages: 2,
        ..ReassemblyLimits::default()
    });
    for id in 1..=5 {
        let f = encrypt_fragments(
            &header(ExchangeType::IKE_AUTH, 0, id),
            &big_inner(),
            c.as_ref(),
            400,
        )
        .unwrap();
        two.handle_fragment(&f[0], c.as_ref()).unwrap();
        assert!(two.pending_messages() <= 2);
    }
    two.forget(5);
    assert_eq!(two.pending_messages(), 1);
}

#[test]
fn bad_inner_chain_after_reassembly_is_an_integrity_verified_syntax_error() {
    // Fragments whose plaintext is not a valid chain: built by hand with the toy cipher.
    let c = ToyCipher { key: 3 };
    let h = header(ExchangeType::IKE_AUTH, 0, 1);
    // A nonce of 3 octets is invalid.
    let bad_inner = [Payload::Nonce(NoncePayload {
        data: vec![1, 2, 3],
    })];
    let (first, plain) = encode_chain(&bad_inner);
    let mut raw = Vec::new();
    let total = 36 + c.sealed_len(plain.len());
    h.encode_with(PayloadType::SKF, total as u32, &mut raw);
    raw.extend_from_slice(&[first.0, 0]);
    raw.extend_from_slice(&((total - 28) as u16).to_be_bytes());
    raw.extend_from_slice(&[0, 1, 0, 1]);
    c.seal(&plain, &mut raw).unwrap();
    let e = Reassembler::new().handle_fragment(&raw, &c).unwrap_err();
    assert_eq!(e, DecodeError::NonceLength { len: 3 });
    assert_eq!(
        e.notify(Protection::IntegrityVerified),
        ResponderAction::Notify(NotifyType::INVALID_SYNTAX, vec![])
    );
}

#[test]
fn a_request_and_a_response_with_the_same_message_id_do_not_mix() {
    let c = gcm();
    let req = encrypt_fragments(
        &header(ExchangeType::INFORMATIONAL, Flags::INITIATOR, 7),
        &big_inner(),
        c.as_ref(),
        700,
    )
    .unwrap();
    let resp = encrypt_fragments(
        &header(
            ExchangeType::INFORMATIONAL,
            Flags::INITIATOR | Flags::RESPONSE,
            7,
        ),
        &ike_auth_inner(),
        c.as_ref(),
        300,
    )
    .unwrap();
    assert!(req.len() > 1 && resp.len() > 1);
    let mut r = Reassembler::new();
    let mut done = Vec::new();
    for i in 0..req.len().max(resp.len()) {
        for f in [req.get(i), resp.get(i)].into_iter().flatten() {
            if let FragmentOutcome::Complete { header, payloads } =
                r.handle_fragment(f, c.as_ref()).unwrap()
            {
                done.push((header.flags.response(), payloads));
            }
        }
    }
    done.sort_by_key(|d| d.0);
    assert_eq!(done, vec![(false, big_inner()), (true, ike_auth_inner())]);
}
