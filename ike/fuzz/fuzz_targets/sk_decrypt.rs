//! The protected paths. An attacker cannot forge ICVs, so besides feeding raw input to
//! `decrypt_message` and the `Reassembler` with a real AES-GCM-16 cipher under fixed
//! keys (which must fail cleanly), this target seals the fuzz input with that cipher so
//! that the inner-chain decoder and reassembly logic are reached through the real code:
//!
//! - mode 0: raw input to `decrypt_message` and `Reassembler::handle_fragment`.
//! - mode 1: input = first inner type + plaintext, sealed into an SK message, decrypted.
//! - mode 2: input = fragment size + order seed + plaintext, sealed into SKF fragments,
//!   fed to the `Reassembler` in a fuzz-chosen order with a duplicate.
//! - mode 3: `decode_chain` directly, with a round-trip invariant.

#![no_main]

use std::sync::OnceLock;

use ike::crypto::{SkCipher, sk_cipher};
use ike::wire::*;
use libfuzzer_sys::fuzz_target;

/// Keyed once: key schedules are not what is being fuzzed.
fn cipher() -> &'static dyn SkCipher {
    static CIPHER: OnceLock<Box<dyn SkCipher>> = OnceLock::new();
    CIPHER
        .get_or_init(|| {
            sk_cipher(EncrId::AES_GCM_16, 128, IntegId::NONE, &[0x42; 20], &[]).expect("AES-GCM-16")
        })
        .as_ref()
}

fn header(message_id: u32) -> Header {
    Header {
        spi_i: IkeSpi(1),
        spi_r: IkeSpi(2),
        next_payload: PayloadType::NONE,
        version: Header::VERSION_2_0,
        exchange: ExchangeType::IKE_AUTH,
        flags: Flags(Flags::INITIATOR),
        message_id,
        length: 0,
    }
}

/// The chain decoder's verdict must equal what came through the protected path, and a
/// decoded chain must round-trip.
fn check_chain(first: PayloadType, plain: &[u8], got: Result<Vec<Payload>, DecodeError>) {
    let direct = decode_chain(first, plain);
    assert_eq!(got, direct);
    if let Ok(p) = direct {
        let (f, again) = encode_chain(&p);
        assert_eq!(decode_chain(f, &again).as_ref(), Ok(&p));
    }
}

/// An SKF datagram carrying `piece` as fragment `number` of `total`.
fn fragment(
    c: &dyn SkCipher,
    first: PayloadType,
    number: u16,
    total: u16,
    piece: &[u8],
) -> Vec<u8> {
    let len = 36 + c.sealed_len(piece.len());
    let mut d = Vec::with_capacity(len);
    header(1).encode_with(PayloadType::SKF, len as u32, &mut d);
    let next = if number == 1 {
        first
    } else {
        PayloadType::NONE
    };
    d.extend_from_slice(&[next.0, 0]);
    d.extend_from_slice(&((len - 28) as u16).to_be_bytes());
    d.extend_from_slice(&number.to_be_bytes());
    d.extend_from_slice(&total.to_be_bytes());
    c.seal(piece, &mut d).expect("seal");
    d
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let c = cipher();
    match mode % 4 {
        0 => {
            assert!(decrypt_message(rest, c).is_err(), "forged ICV accepted");
            let mut r = Reassembler::new();
            match r.handle_fragment(rest, c) {
                Err(_) | Ok(FragmentOutcome::Discarded) | Ok(FragmentOutcome::Duplicate) => {}
                Ok(other) => panic!("forged fragment accepted: {other:?}"),
            }
        }
        1 => {
            let Some((&first, plain)) = rest.split_first() else {
                return;
            };
            let first = PayloadType(first);
            let mut raw = Vec::new();
            let len = 32 + c.sealed_len(plain.len());
            header(1).encode_with(PayloadType::SK, len as u32, &mut raw);
            raw.extend_from_slice(&[first.0, 0]);
            raw.extend_from_slice(&((len - 28) as u16).to_be_bytes());
            c.seal(plain, &mut raw).expect("seal");
            let got = decrypt_message(&raw, c).map(|(_, p)| p);
            check_chain(first, plain, got);
        }
        2 => {
            let [size, seed, first, plain @ ..] = rest else {
                return;
            };
            let first = PayloadType(*first);
            // 1 to 16 fragments, cut at fuzz-chosen sizes: enough to split any payload
            // boundary while keeping the AES-GCM work per input small (the fragment-count
            // limit is covered by the unit tests).
            let chunk = plain.len().div_ceil(usize::from(*size % 16) + 1).max(1);
            let pieces: Vec<&[u8]> = if plain.is_empty() {
                vec![&[]]
            } else {
                plain.chunks(chunk).collect()
            };
            let Ok(total) = u16::try_from(pieces.len()) else {
                return;
            };
            let frags: Vec<Vec<u8>> = pieces
                .iter()
                .enumerate()
                .map(|(i, p)| fragment(c, first, i as u16 + 1, total, p))
                .collect();
            // A deterministic shuffle with one duplicate, from the seed.
            let n = frags.len();
            let mut order: Vec<usize> = (0..n).collect();
            let mut s = u32::from(*seed) | 1;
            for i in (1..n).rev() {
                s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                order.swap(i, (s as usize >> 8) % (i + 1));
            }
            if let Some(&d) = order.first() {
                order.insert(n / 2, d);
            }
            let mut r = Reassembler::new();
            let mut result = None;
            for i in order {
                match r.handle_fragment(&frags[i], c) {
                    Ok(FragmentOutcome::Complete { payloads, .. }) => result = Some(Ok(payloads)),
                    Ok(_) => {}
                    Err(e) => result = Some(Err(e)),
                }
            }
            check_chain(first, plain, result.expect("all fragments given"));
        }
        _ => {
            let Some((&first, plain)) = rest.split_first() else {
                return;
            };
            let first = PayloadType(first);
            check_chain(first, plain, decode_chain(first, plain));
        }
    }
});
