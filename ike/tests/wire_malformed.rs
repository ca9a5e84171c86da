//! Malformed input: every case must be an error (or, for benign corruption, a valid
//! decode that re-encodes to something that decodes to the same thing), never a panic;
//! and the responder's reaction must be the RFC's.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test helpers: a failure is a test failure

mod wire_common;

use ike::wire::*;
use wire_common::*;

/// Header + raw chain with a correct Length field.
fn msg(first: u8, chain: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    header(ExchangeType::IKE_SA_INIT, Flags::INITIATOR, 0).encode_with(
        PayloadType(first),
        (28 + chain.len()) as u32,
        &mut out,
    );
    out.extend_from_slice(chain);
    out
}

/// A generic payload with a correct length.
fn gp(next: u8, critical: bool, body: &[u8]) -> Vec<u8> {
    let mut out = vec![next, if critical { 0x80 } else { 0 }];
    out.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn decode_err(bytes: &[u8]) -> DecodeError {
    Message::decode(bytes).unwrap_err()
}

fn drop_unprotected(e: &DecodeError) {
    assert_eq!(
        e.notify(Protection::Unprotected),
        ResponderAction::Drop,
        "{e:?}"
    );
}

fn syntax_when_protected(e: &DecodeError) {
    drop_unprotected(e);
    assert_eq!(
        e.notify(Protection::IntegrityVerified),
        ResponderAction::Notify(NotifyType::INVALID_SYNTAX, vec![]),
        "{e:?}"
    );
}

#[test]
fn truncated_headers() {
    let good = ike_sa_init_request().encode();
    for len in 0..28 {
        let e = decode_err(&good[..len]);
        assert_eq!(e, DecodeError::TruncatedHeader { len });
        drop_unprotected(&e);
        assert_eq!(
            e.notify(Protection::IntegrityVerified),
            ResponderAction::Drop
        );
    }
}

#[test]
fn length_field_must_equal_datagram_length() {
    let good = ike_sa_init_request().encode();
    // Datagram cut short of the Length field.
    for cut in [1, 10, good.len() - 29] {
        let e = decode_err(&good[..good.len() - cut]);
        assert!(matches!(e, DecodeError::LengthMismatch { .. }), "{e:?}");
        drop_unprotected(&e);
    }
    // Trailing garbage after the message.
    let mut long = good.clone();
    long.extend_from_slice(&[0; 4]);
    assert!(matches!(
        decode_err(&long),
        DecodeError::LengthMismatch { .. }
    ));
    // Length field of 0 and u32::MAX.
    for l in [0u32, 27, u32::MAX] {
        let mut b = good.clone();
        b[24..28].copy_from_slice(&l.to_be_bytes());
        assert!(matches!(decode_err(&b), DecodeError::LengthMismatch { .. }));
    }
}

#[test]
fn major_versions() {
    let mut b = ike_sa_init_request().encode();
    b[17] = 0x30;
    let e = decode_err(&b);
    assert_eq!(e, DecodeError::UnsupportedMajorVersion { version: 0x30 });
    // RFC 7296 §2.5: higher major version → INVALID_MAJOR_VERSION, unauthenticated.
    assert_eq!(
        e.notify(Protection::Unprotected),
        ResponderAction::Notify(NotifyType::INVALID_MAJOR_VERSION, vec![])
    );
    // IKEv1 (major 1) and 0 are dropped.
    for v in [0x10, 0x00] {
        b[17] = v;
        drop_unprotected(&decode_err(&b));
    }
}

#[test]
fn payload_lengths_past_the_end_or_below_minimum() {
    // A vendor ID claiming 100 octets in a 10-octet chain.
    let mut p = gp(0, false, &[1; 6]);
    p[3] = 100;
    let e = decode_err(&msg(PayloadType::VENDOR_ID.0, &p));
    assert_eq!(
        e,
        DecodeError::PayloadLengthPastEnd {
            payload: PayloadType::VENDOR_ID,
            length: 100,
            available: 10
        }
    );
    syntax_when_protected(&e);
    // Zero-length (and 1..3) payloads can never loop: below the generic header.
    for l in 0..4u8 {
        let chain = [0, 0, 0, l, 0, 0, 0, 0];
        let e = decode_err(&msg(PayloadType::VENDOR_ID.0, &chain));
        assert_eq!(
            e,
            DecodeError::PayloadTooShort {
                payload: PayloadType::VENDOR_ID,
                length: l as usize,
                minimum: 4
            }
        );
    }
    // Bodies below their type's minimum.
    for (t, body) in [
        (PayloadType::KE, &[0u8, 14, 0][..]),
        (PayloadType::IDI, &[1, 0, 0][..]),
        (PayloadType::AUTH, &[2][..]),
        (PayloadType::NOTIFY, &[0, 0, 0][..]),
        (PayloadType::DELETE, &[1, 0][..]),
        (PayloadType::TSI, &[0, 0][..]),
        (PayloadType::CP, &[][..]),
        (PayloadType::CERT, &[][..]),
        (PayloadType::SA, &[0, 0, 0, 8][..]),
        (PayloadType::SKF, &[0, 1, 0][..]),
    ] {
        let e = decode_err(&msg(t.0, &gp(0, false, body)));
        assert!(
            matches!(e, DecodeError::PayloadTooShort { payload, .. } if payload == t),
            "{t:?}: {e:?}"
        );
    }
    // A header with no room for the generic header it promises.
    let e = decode_err(&msg(PayloadType::NONCE.0, &[0, 0]));
    assert_eq!(
        e,
        DecodeError::Truncated {
            within: "generic payload header"
        }
    );
}

#[test]
fn chains_that_overlap_or_dangle() {
    let n = [7u8; 16];
    // The first payload's Next Payload promises a second payload that is not there.
    let e = decode_err(&msg(
        PayloadType::NONCE.0,
        &gp(PayloadType::NONCE.0, false, &n),
    ));
    assert_eq!(
        e,
        DecodeError::Truncated {
            within: "generic payload header"
        }
    );
    // Octets after the last payload (Next Payload NONE).
    let mut chain = gp(0, false, &n);
    chain.extend_from_slice(&[0; 8]);
    assert_eq!(
        decode_err(&msg(PayloadType::NONCE.0, &chain)),
        DecodeError::TrailingData {
            within: "payload chain",
            extra: 8
        }
    );
    // An SA whose length is shortened so part of it "overlaps" as the next payload.
    let good = ike_sa_init_request().encode();
    let sa_len = u16::from_be_bytes([good[30], good[31]]);
    for delta in [1u16, 4, 8, 12, 36] {
        let mut b = good.clone();
        b[30..32].copy_from_slice(&(sa_len - delta).to_be_bytes());
        assert!(Message::decode(&b).is_err(), "delta {delta}");
    }
}

#[test]
fn oversized_and_inconsistent_counts() {
    // TS payload declaring 255 selectors but holding one.
    let ts = Payload::TsI(TsPayload {
        selectors: ts_v4_v6().selectors[..1].to_vec(),
    });
    let mut body = ts.encode_body();
    body[0] = 255;
    let e = decode_err(&msg(PayloadType::TSI.0, &gp(0, false, &body)));
    assert_eq!(
        e,
        DecodeError::CountMismatch {
            within: "TS payload",
            declared: 255,
            found: 1
        }
    );
    // 65 selectors.
    let many = Payload::TsI(TsPayload {
        selectors: vec![ts_v4_v6().selectors[0].clone(); 65],
    });
    let e = decode_err(&msg(PayloadType::TSI.0, &gp(0, false, &many.encode_body())));
    assert_eq!(
        e,
        DecodeError::TooManySelectors {
            limit: MAX_SELECTORS
        }
    );
    // 65 proposals.
    let mut sa = ike_sa_payload();
    sa.proposals = vec![sa.proposals[0].clone(); MAX_PROPOSALS + 1];
    let e = decode_err(&msg(
        PayloadType::SA.0,
        &gp(0, false, &Payload::Sa(sa).encode_body()),
    ));
    assert_eq!(
        e,
        DecodeError::TooManyProposals {
            limit: MAX_PROPOSALS
        }
    );
    // 129 transforms.
    let mut sa = ike_sa_payload();
    sa.proposals.truncate(1);
    let t = sa.proposals[0].transforms[0].clone();
    sa.proposals[0].transforms = vec![t; MAX_TRANSFORMS + 1];
    let e = decode_err(&msg(
        PayloadType::SA.0,
        &gp(0, false, &Payload::Sa(sa).encode_body()),
    ));
    assert_eq!(
        e,
        DecodeError::TooManyTransforms {
            limit: MAX_TRANSFORMS
        }
    );
    // Num Transforms disagreeing with the transforms present.
    let mut body = Payload::Sa(ike_sa_payload()).encode_body();
    body[7] = 9;
    let e = decode_err(&msg(PayloadType::SA.0, &gp(0, false, &body)));
    assert!(
        matches!(e, DecodeError::CountMismatch { declared: 9, .. }),
        "{e:?}"
    );
    // 17 attributes in a transform.
    let mut sa = ike_sa_payload();
    sa.proposals.truncate(1);
    sa.proposals[0].transforms[0].attributes =
        vec![sa.proposals[0].transforms[0].attributes[0].clone(); MAX_TRANSFORM_ATTRIBUTES + 1];
    let e = decode_err(&msg(
        PayloadType::SA.0,
        &gp(0, false, &Payload::Sa(sa).encode_body()),
    ));
    assert_eq!(
        e,
        DecodeError::TooManyAttributes {
            limit: MAX_TRANSFORM_ATTRIBUTES
        }
    );
    // Delete: 65535 zero-size SPIs would allocate for nothing; 1000 4-octet SPIs in 8.
    for body in [
        [1u8, 0, 0xff, 0xff].to_vec(),
        vec![3, 4, 0x03, 0xe8, 1, 2, 3, 4, 5, 6, 7, 8],
    ] {
        let e = decode_err(&msg(PayloadType::DELETE.0, &gp(0, false, &body)));
        assert!(matches!(e, DecodeError::BadDelete { .. }), "{e:?}");
    }
    // 257 payloads.
    let mut chain = Vec::new();
    for i in 0..=MAX_PAYLOADS {
        let next = if i == MAX_PAYLOADS {
            0
        } else {
            PayloadType::VENDOR_ID.0
        };
        chain.extend_from_slice(&gp(next, false, &[]));
    }
    let e = decode_err(&msg(PayloadType::VENDOR_ID.0, &chain));
    assert_eq!(
        e,
        DecodeError::TooManyPayloads {
            limit: MAX_PAYLOADS
        }
    );
    syntax_when_protected(&e);
    // 129 CP attributes.
    let mut body = vec![1, 0, 0, 0];
    for _ in 0..=MAX_CP_ATTRIBUTES {
        body.extend_from_slice(&[0, 1, 0, 0]);
    }
    assert_eq!(
        decode_err(&msg(PayloadType::CP.0, &gp(0, false, &body))),
        DecodeError::TooManyAttributes {
            limit: MAX_CP_ATTRIBUTES
        }
    );
}

#[test]
fn bad_substructure_lengths() {
    let good = Payload::Sa(ike_sa_payload()).encode_body();
    let check = |body: &[u8]| decode_err(&msg(PayloadType::SA.0, &gp(0, false, body)));
    // Proposal length below 8 and past the SA.
    for l in [0u16, 7, 0x1000] {
        let mut b = good.clone();
        b[2..4].copy_from_slice(&l.to_be_bytes());
        let e = check(&b);
        assert!(
            matches!(
                e,
                DecodeError::BadSubstructureLength {
                    within: "proposal",
                    ..
                }
            ),
            "{l}: {e:?}"
        );
    }
    // Transform length below 8 and past the proposal (first transform at offset 8).
    for l in [0u16, 7, 0x1000] {
        let mut b = good.clone();
        b[10..12].copy_from_slice(&l.to_be_bytes());
        let e = check(&b);
        assert!(
            matches!(
                e,
                DecodeError::BadSubstructureLength {
                    within: "transform",
                    ..
                }
            ),
            "{l}: {e:?}"
        );
    }
    // Last Substruc fields that lie.
    let mut b = good.clone();
    b[0] = 0; // "last proposal" but another follows
    assert!(matches!(
        check(&b),
        DecodeError::BadLastSubstruc {
            within: "proposal",
            ..
        }
    ));
    let mut b = good.clone();
    b[8] = 0; // "last transform" but others follow
    assert!(matches!(
        check(&b),
        DecodeError::BadLastSubstruc {
            within: "transform",
            ..
        }
    ));
    // A TLV attribute whose length runs past its transform.
    let sa = SaPayload {
        proposals: vec![Proposal {
            number: 1,
            protocol: ProtocolId::IKE,
            spi: vec![],
            transforms: vec![Transform {
                transform_type: TransformType::ENCR,
                id: 12,
                attributes: vec![TransformAttribute {
                    attr_type: TransformAttributeType(5),
                    value: AttributeValue::Tlv(vec![1, 2]),
                }],
            }],
        }],
    };
    let mut b = Payload::Sa(sa).encode_body();
    let n = b.len();
    b[n - 3] = 3; // TLV length 3 with 2 octets left
    assert_eq!(
        check(&b),
        DecodeError::BadSubstructureLength {
            within: "transform attribute",
            length: 3
        }
    );
    // A TV attribute cut in half.
    let mut b = good.clone();
    let tl = u16::from_be_bytes([b[10], b[11]]);
    b[10..12].copy_from_slice(&(tl - 1).to_be_bytes());
    assert!(check(&b).notify(Protection::Unprotected) == ResponderAction::Drop);
    // SPI size larger than the proposal.
    let mut b = good.clone();
    b[6] = 200;
    assert!(matches!(
        check(&b),
        DecodeError::Truncated { within: "proposal" }
    ));
    // Traffic selectors of the wrong length for their type, or below 4.
    let ts = Payload::TsI(ts_v4_v6()).encode_body();
    let mut b = ts.clone();
    b[4] = 8; // an IPv4-sized selector typed IPv6
    assert!(matches!(
        decode_err(&msg(PayloadType::TSI.0, &gp(0, false, &b))),
        DecodeError::BadTrafficSelector { .. }
    ));
    for l in [0u16, 3, 200] {
        let mut b = ts.clone();
        b[6..8].copy_from_slice(&l.to_be_bytes());
        let e = decode_err(&msg(PayloadType::TSI.0, &gp(0, false, &b)));
        assert!(
            matches!(
                e,
                DecodeError::BadSubstructureLength {
                    within: "traffic selector",
                    ..
                }
            ),
            "{e:?}"
        );
    }
    // A CP attribute running past the payload.
    let e = decode_err(&msg(
        PayloadType::CP.0,
        &gp(0, false, &[1, 0, 0, 0, 0, 1, 0, 9, 1]),
    ));
    assert!(matches!(
        e,
        DecodeError::BadSubstructureLength {
            within: "configuration attribute",
            ..
        }
    ));
    // A notify whose SPI size runs past the payload.
    let e = decode_err(&msg(
        PayloadType::NOTIFY.0,
        &gp(0, false, &[3, 8, 0x40, 0, 1, 2]),
    ));
    assert_eq!(
        e,
        DecodeError::Truncated {
            within: "payload body"
        }
    );
}

#[test]
fn unknown_critical_payloads() {
    // An unknown payload type with the critical bit, after a known one.
    let mut chain = gp(200, false, &[9; 16]);
    chain.extend_from_slice(&gp(0, true, &[1, 2, 3]));
    let e = decode_err(&msg(PayloadType::NONCE.0, &chain));
    assert_eq!(
        e,
        DecodeError::UnsupportedCriticalPayload {
            payload_type: PayloadType(200)
        }
    );
    // RFC 7296 §2.5/§3.10.1: the notify carries the payload type as its one octet, and
    // is sent protected or not.
    for p in [Protection::Unprotected, Protection::IntegrityVerified] {
        assert_eq!(
            e.notify(p),
            ResponderAction::Notify(NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD, vec![200])
        );
    }
    // The same inside an SK plaintext.
    let e = decode_chain(PayloadType::GSPM, &gp(0, true, &[])).unwrap_err();
    assert_eq!(
        e,
        DecodeError::UnsupportedCriticalPayload {
            payload_type: PayloadType::GSPM
        }
    );
    // Without the critical bit it is kept.
    let m = Message::decode(&msg(PayloadType(200).0, &gp(0, false, &[1]))).unwrap();
    assert_eq!(
        m.payloads,
        vec![Payload::Unknown {
            payload_type: PayloadType(200),
            critical: false,
            body: vec![1]
        }]
    );
}

#[test]
fn sk_must_be_last_and_skf_alone() {
    // SK followed by another payload's octets.
    let mut chain = gp(PayloadType::NONCE.0, false, &[0; 20]);
    chain.extend_from_slice(&gp(0, false, &[0; 16]));
    let e = decode_err(&msg(PayloadType::SK.0, &chain));
    assert_eq!(e, DecodeError::SkNotLast);
    drop_unprotected(&e);
    // SKF after another payload, and SKF followed by octets.
    let mut chain = gp(PayloadType::SKF.0, false, &[0; 16]);
    chain.extend_from_slice(&gp(0, false, &[0, 1, 0, 1, 9, 9]));
    assert_eq!(
        decode_err(&msg(PayloadType::NONCE.0, &chain)),
        DecodeError::SkfNotAlone
    );
    let mut chain = gp(0, false, &[0, 1, 0, 1]);
    chain.extend_from_slice(&[0; 4]);
    assert_eq!(
        decode_err(&msg(PayloadType::SKF.0, &chain)),
        DecodeError::SkfNotAlone
    );
    // SK or SKF inside an SK plaintext.
    for t in [PayloadType::SK, PayloadType::SKF] {
        assert_eq!(
            decode_chain(t, &gp(0, false, &[0, 1, 0, 1])).unwrap_err(),
            DecodeError::NestedEncryptedPayload
        );
    }
}

#[test]
fn skf_fragment_numbers() {
    for (number, total) in [(0u16, 0u16), (1, 0), (0, 1), (3, 2), (65535, 1)] {
        let mut body = number.to_be_bytes().to_vec();
        body.extend_from_slice(&total.to_be_bytes());
        body.extend_from_slice(&[0; 16]);
        let e = decode_err(&msg(PayloadType::SKF.0, &gp(0, false, &body)));
        assert_eq!(e, DecodeError::BadFragment { number, total });
        drop_unprotected(&e);
        // The reassembler rejects it before any decryption.
        let c = ToyCipher { key: 0 };
        assert_eq!(
            Reassembler::new().handle_fragment(&msg(PayloadType::SKF.0, &gp(0, false, &body)), &c),
            Err(DecodeError::Unverified(Box::new(
                DecodeError::BadFragment { number, total }
            )))
        );
    }
}

#[test]
fn nonce_lengths() {
    for len in [0usize, 1, 15, 257, 1000] {
        let e = decode_err(&msg(PayloadType::NONCE.0, &gp(0, false, &vec![1; len])));
        assert_eq!(e, DecodeError::NonceLength { len });
        syntax_when_protected(&e);
    }
    for len in [16usize, 256] {
        assert!(Message::decode(&msg(PayloadType::NONCE.0, &gp(0, false, &vec![1; len]))).is_ok());
    }
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Decode; if it succeeds, the re-encoding must decode to the same message, and
/// re-encoding that must be stable.
fn check_invariant(bytes: &[u8]) -> bool {
    match Message::decode(bytes) {
        Ok(m) => {
            let again = m.encode();
            let m2 = Message::decode(&again).expect("re-encoding decodes");
            assert_eq!(m2.payloads, m.payloads);
            assert_eq!(m2.encode(), again);
            true
        }
        Err(e) => {
            // Every error maps to some reaction without panicking.
            let _ = e.notify(Protection::Unprotected);
            false
        }
    }
}

fn corpus() -> Vec<Vec<u8>> {
    let h = header(ExchangeType::IKE_AUTH, Flags::INITIATOR, 1);
    let c = ToyCipher { key: 9 };
    let mut v = vec![
        ike_sa_init_request().encode(),
        Message {
            header: h,
            payloads: every_payload(),
        }
        .encode(),
        encrypt_message(&h, &ike_auth_inner(), &c).unwrap(),
    ];
    v.extend(encrypt_fragments(&h, &ike_auth_inner(), &c, 200).unwrap());
    v
}

#[test]
fn random_bit_flips_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut ok, mut err) = (0, 0);
    for base in corpus() {
        for _ in 0..3000 {
            let mut b = base.clone();
            for _ in 0..=rng.below(3) {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            if check_invariant(&b) {
                ok += 1;
            } else {
                err += 1;
            }
        }
    }
    // Both outcomes occur: flips inside opaque data decode, flips in lengths do not.
    assert!(ok > 1000 && err > 1000, "ok {ok} err {err}");
}

#[test]
fn random_truncations_insertions_and_length_fixups_never_panic() {
    let mut rng = Rng(42);
    for base in corpus() {
        for _ in 0..2000 {
            let mut b = base.clone();
            match rng.below(3) {
                0 => b.truncate(rng.below(b.len())),
                1 => {
                    let at = rng.below(b.len());
                    let n = rng.below(8);
                    for _ in 0..n {
                        b.insert(at, rng.next() as u8);
                    }
                }
                _ => {
                    let i = 28 + rng.below(b.len() - 28);
                    b[i] = rng.next() as u8;
                }
            }
            // Fix up the header length so the corruption reaches the payload decoder.
            if b.len() >= 28 {
                let l = b.len() as u32;
                b[24..28].copy_from_slice(&l.to_be_bytes());
            }
            check_invariant(&b);
            // And the inner-chain decoder on the same octets.
            if let Some(Ok(p)) = b
                .get(28..)
                .map(|rest| decode_chain(PayloadType(b[16]), rest))
            {
                let (first, again) = encode_chain(&p);
                assert_eq!(decode_chain(first, &again).unwrap(), p);
            }
        }
    }
}

#[test]
fn random_garbage_chains_never_panic() {
    let mut rng = Rng(7);
    for _ in 0..20_000 {
        let len = rng.below(200);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let first = PayloadType(
            [
                33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 47, 48, 200,
            ][rng.below(16)],
        );
        let _ = decode_chain(first, &bytes);
        let _ = check_invariant(&msg(first.0, &bytes));
    }
}

/// The whole mapping, one representative per reaction (RFC 7296 §2.5, §2.21, §3.10.1).
#[test]
fn responder_action_mapping_table() {
    use DecodeError as E;
    use Protection::{IntegrityVerified as V, Unprotected as U};
    let syntax = ResponderAction::Notify(NotifyType::INVALID_SYNTAX, vec![]);
    let cases: Vec<(DecodeError, ResponderAction, ResponderAction)> = vec![
        (
            E::TruncatedHeader { len: 3 },
            ResponderAction::Drop,
            ResponderAction::Drop,
        ),
        (
            E::UnsupportedMajorVersion { version: 0x30 },
            ResponderAction::Notify(NotifyType::INVALID_MAJOR_VERSION, vec![]),
            ResponderAction::Notify(NotifyType::INVALID_MAJOR_VERSION, vec![]),
        ),
        (
            E::UnsupportedMajorVersion { version: 0x10 },
            ResponderAction::Drop,
            ResponderAction::Drop,
        ),
        (
            E::LengthMismatch {
                header: 1,
                datagram: 2,
            },
            ResponderAction::Drop,
            ResponderAction::Drop,
        ),
        (
            E::UnsupportedCriticalPayload {
                payload_type: PayloadType(99),
            },
            ResponderAction::Notify(NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD, vec![99]),
            ResponderAction::Notify(NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD, vec![99]),
        ),
        (
            E::Crypto(ike::crypto::CryptoError::IntegrityCheckFailed),
            ResponderAction::Drop,
            ResponderAction::Drop,
        ),
        (
            E::ReassemblyLimit { reason: "x" },
            ResponderAction::Drop,
            ResponderAction::Drop,
        ),
        (
            E::Unverified(Box::new(E::SkNotLast)),
            ResponderAction::Drop,
            ResponderAction::Drop,
        ),
        (
            E::NonceLength { len: 3 },
            ResponderAction::Drop,
            syntax.clone(),
        ),
        (E::SkNotLast, ResponderAction::Drop, syntax.clone()),
        (
            E::TooManyProposals { limit: 1 },
            ResponderAction::Drop,
            syntax.clone(),
        ),
        (
            E::BadTrafficSelector { reason: "x" },
            ResponderAction::Drop,
            syntax.clone(),
        ),
        (E::Truncated { within: "x" }, ResponderAction::Drop, syntax),
    ];
    for (e, unprotected, verified) in cases {
        assert_eq!(e.notify(U), unprotected, "{e:?}");
        assert_eq!(e.notify(V), verified, "{e:?}");
    }
}
