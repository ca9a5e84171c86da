//! Lines of Wireshark's `ikev2_decryption_table` (one per IKE SA), so that captures of
//! our IKE traffic can be decrypted. Written only when the operator configures `keylog`.

use crate::sa::IkeSa;
use crate::wire::{EncrId, IntegId};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn encr_label(id: EncrId, bits: u16) -> String {
    match id {
        EncrId::AES_CBC => format!("AES-CBC-{bits} [RFC3602]"),
        EncrId::AES_GCM_16 => format!("AES-GCM-{bits} with 16 octet ICV [RFC5282]"),
        EncrId::AES_GCM_12 => format!("AES-GCM-{bits} with 12 octet ICV [RFC5282]"),
        EncrId::AES_GCM_8 => format!("AES-GCM-{bits} with 8 octet ICV [RFC5282]"),
        EncrId::CHACHA20_POLY1305 => "CHACHA20-POLY1305 [RFC7634]".to_owned(),
        other => format!("{other:?}"),
    }
}

fn integ_label(id: IntegId) -> &'static str {
    match id {
        IntegId::HMAC_SHA2_256_128 => "HMAC_SHA2_256_128 [RFC4868]",
        IntegId::HMAC_SHA2_384_192 => "HMAC_SHA2_384_192 [RFC4868]",
        IntegId::HMAC_SHA2_512_256 => "HMAC_SHA2_512_256 [RFC4868]",
        IntegId::HMAC_SHA1_96 => "HMAC_SHA1_96 [RFC2404]",
        _ => "NONE [RFC4306]",
    }
}

/// `SPIi,SPIr,SK_ei,SK_er,"encr",SK_ai,SK_ar,"integ"` for `sa`.
pub(crate) fn line(sa: &IkeSa) -> String {
    let k = &sa.keys;
    format!(
        "{},{},{},{},\"{}\",{},{},\"{}\"",
        hex(&sa.spis.spi_i.to_bytes()),
        hex(&sa.spis.spi_r.to_bytes()),
        hex(k.sk_ei.expose()),
        hex(k.sk_er.expose()),
        encr_label(sa.suite.encr.id, sa.suite.encr.key_bits),
        hex(k.sk_ai.expose()),
        hex(k.sk_ar.expose()),
        integ_label(sa.suite.integ),
    )
}
