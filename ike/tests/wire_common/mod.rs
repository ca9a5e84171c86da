//! Hand-built messages shared by the wire tests.
#![allow(dead_code, unreachable_pub)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ike::crypto::{CryptoError, SkCipher};
use ike::wire::*;

pub fn header(exchange: ExchangeType, flags: u8, message_id: u32) -> Header {
    Header {
        spi_i: IkeSpi(0x1122_3344_5566_7788),
        spi_r: IkeSpi(
            if exchange == ExchangeType::IKE_SA_INIT && flags & Flags::RESPONSE == 0 {
                0
            } else {
                0x99aa_bbcc_ddee_ff00
            },
        ),
        next_payload: PayloadType::NONE,
        version: Header::VERSION_2_0,
        exchange,
        flags: Flags(flags),
        message_id,
        length: 0,
    }
}

fn tv(t: TransformType, id: u16, key_bits: Option<u16>) -> Transform {
    Transform {
        transform_type: t,
        id,
        attributes: key_bits
            .map(|k| TransformAttribute {
                attr_type: TransformAttributeType::KEY_LENGTH,
                value: AttributeValue::Tv(k),
            })
            .into_iter()
            .collect(),
    }
}

pub fn ike_sa_payload() -> SaPayload {
    SaPayload {
        proposals: vec![
            Proposal {
                number: 1,
                protocol: ProtocolId::IKE,
                spi: vec![],
                transforms: vec![
                    tv(TransformType::ENCR, EncrId::AES_GCM_16.0, Some(256)),
                    tv(TransformType::PRF, PrfId::HMAC_SHA2_256.0, None),
                    tv(TransformType::KE, KeGroup::CURVE25519.0, None),
                    tv(TransformType::KE, KeGroup::ECP_256.0, None),
                ],
            },
            Proposal {
                number: 2,
                protocol: ProtocolId::IKE,
                spi: vec![],
                transforms: vec![
                    tv(TransformType::ENCR, EncrId::AES_CBC.0, Some(128)),
                    tv(TransformType::PRF, PrfId::HMAC_SHA2_256.0, None),
                    tv(TransformType::INTEG, IntegId::HMAC_SHA2_256_128.0, None),
                    tv(TransformType::KE, KeGroup::MODP_2048.0, None),
                ],
            },
        ],
    }
}

pub fn esp_sa_payload(spi: u32) -> SaPayload {
    SaPayload {
        proposals: vec![Proposal {
            number: 1,
            protocol: ProtocolId::ESP,
            spi: spi.to_be_bytes().to_vec(),
            transforms: vec![
                tv(TransformType::ENCR, EncrId::AES_GCM_16.0, Some(128)),
                tv(TransformType::ESN, EsnId::NO_ESN.0, None),
            ],
        }],
    }
}

pub fn ts_v4_v6() -> TsPayload {
    TsPayload {
        selectors: vec![
            TrafficSelector::Ip(IpTrafficSelector {
                ip_protocol: 0,
                start_port: 0,
                end_port: 65535,
                start_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)),
                end_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 255, 255)),
            }),
            TrafficSelector::Ip(IpTrafficSelector {
                ip_protocol: 6,
                start_port: 443,
                end_port: 443,
                start_addr: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0)),
                end_addr: IpAddr::V6(Ipv6Addr::new(
                    0x2001, 0xdb8, 0, 0, 0xffff, 0xffff, 0xffff, 0xffff,
                )),
            }),
        ],
    }
}

pub fn nonce(n: usize, fill: u8) -> Payload {
    Payload::Nonce(NoncePayload {
        data: vec![fill; n],
    })
}

/// A typical IKE_SA_INIT request (X25519, NAT-D, fragmentation, signature hashes).
pub fn ike_sa_init_request() -> Message {
    Message {
        header: header(ExchangeType::IKE_SA_INIT, Flags::INITIATOR, 0),
        payloads: vec![
            Payload::Sa(ike_sa_payload()),
            Payload::Ke(KePayload {
                group: KeGroup::CURVE25519,
                data: vec![0x42; 32],
            }),
            nonce(32, 0x17),
            Payload::Notify(NotifyPayload::nat_detection_source_ip([1; 20])),
            Payload::Notify(NotifyPayload::nat_detection_destination_ip([2; 20])),
            Payload::Notify(NotifyPayload::new(
                NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
                vec![],
            )),
            Payload::Notify(NotifyPayload::signature_hash_algorithms(&[
                HashAlgorithm::SHA2_256,
                HashAlgorithm::SHA2_384,
                HashAlgorithm::SHA2_512,
            ])),
            Payload::VendorId(VendorIdPayload {
                data: b"baton test vendor".to_vec(),
            }),
        ],
    }
}

/// The inner chain of a typical IKE_AUTH request (PSK, CP, TS v4+v6).
pub fn ike_auth_inner() -> Vec<Payload> {
    vec![
        Payload::IdI(IdPayload {
            id_type: IdType::FQDN,
            data: b"client.example.org".to_vec(),
        }),
        Payload::Notify(NotifyPayload::new(NotifyType::INITIAL_CONTACT, vec![])),
        Payload::IdR(IdPayload {
            id_type: IdType::FQDN,
            data: b"gw.example.org".to_vec(),
        }),
        Payload::Auth(AuthPayload {
            method: AuthMethod::SHARED_KEY_MIC,
            data: vec![0xa5; 32],
        }),
        Payload::Cp(CpPayload {
            cfg_type: CfgType::REQUEST,
            attributes: vec![
                CfgAttribute {
                    attr_type: CfgAttrType::INTERNAL_IP4_ADDRESS,
                    value: vec![],
                },
                CfgAttribute {
                    attr_type: CfgAttrType::INTERNAL_IP4_DNS,
                    value: vec![],
                },
            ],
        }),
        Payload::Sa(esp_sa_payload(0xc0ffee01)),
        Payload::TsI(ts_v4_v6()),
        Payload::TsR(ts_v4_v6()),
        Payload::Notify(NotifyPayload::new(NotifyType::MOBIKE_SUPPORTED, vec![])),
    ]
}

/// The inner chain of a CREATE_CHILD_SA request rekeying a Child SA with PFS.
pub fn create_child_sa_inner() -> Vec<Payload> {
    vec![
        Payload::Notify(NotifyPayload::rekey_sa(ProtocolId::ESP, 0xc0ffee01)),
        Payload::Sa(esp_sa_payload(0xc0ffee02)),
        nonce(32, 0x33),
        Payload::Ke(KePayload {
            group: KeGroup::CURVE25519,
            data: vec![0x24; 32],
        }),
        Payload::TsI(ts_v4_v6()),
        Payload::TsR(ts_v4_v6()),
    ]
}

/// One payload of every type, for round trips.
pub fn every_payload() -> Vec<Payload> {
    vec![
        Payload::Sa(SaPayload {
            proposals: vec![Proposal {
                number: 1,
                protocol: ProtocolId::IKE,
                spi: vec![1, 2, 3, 4, 5, 6, 7, 8],
                transforms: vec![Transform {
                    transform_type: TransformType::ENCR,
                    id: 1234,
                    attributes: vec![
                        TransformAttribute {
                            attr_type: TransformAttributeType::KEY_LENGTH,
                            value: AttributeValue::Tv(128),
                        },
                        TransformAttribute {
                            attr_type: TransformAttributeType(999),
                            value: AttributeValue::Tlv(vec![9, 8, 7]),
                        },
                        TransformAttribute {
                            attr_type: TransformAttributeType(1000),
                            value: AttributeValue::Tlv(vec![]),
                        },
                    ],
                }],
            }],
        }),
        Payload::Ke(KePayload {
            group: KeGroup::MODP_2048,
            data: vec![7; 256],
        }),
        Payload::IdI(IdPayload {
            id_type: IdType::IPV4_ADDR,
            data: vec![192, 0, 2, 1],
        }),
        Payload::IdR(IdPayload {
            id_type: IdType::DER_ASN1_DN,
            data: vec![0x30, 0],
        }),
        Payload::Cert(CertPayload {
            encoding: CertEncoding::X509_SIGNATURE,
            data: vec![0x30, 0x82, 1, 0],
        }),
        Payload::CertReq(CertReqPayload {
            encoding: CertEncoding::X509_SIGNATURE,
            data: vec![0xee; 40],
        }),
        Payload::Auth(AuthPayload {
            method: AuthMethod::DIGITAL_SIGNATURE,
            data: vec![1; 100],
        }),
        nonce(16, 1),
        nonce(256, 2),
        Payload::Notify(NotifyPayload {
            protocol: ProtocolId::ESP,
            spi: vec![0, 0, 0, 1],
            notify_type: NotifyType(45000),
            data: vec![1, 2, 3],
        }),
        Payload::Notify(NotifyPayload::message_id_sync(&MessageIdSyncData {
            nonce: 1,
            expected_send_req_message_id: 2,
            expected_recv_req_message_id: 3,
        })),
        Payload::Delete(DeletePayload {
            protocol: ProtocolId::IKE,
            spi_size: 0,
            spis: vec![],
        }),
        Payload::Delete(DeletePayload {
            protocol: ProtocolId::ESP,
            spi_size: 4,
            spis: vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8]],
        }),
        Payload::VendorId(VendorIdPayload { data: vec![] }),
        Payload::TsI(ts_v4_v6()),
        Payload::TsR(TsPayload {
            selectors: vec![TrafficSelector::Unknown {
                ts_type: TsType(10),
                data: vec![0xde, 0xad],
            }],
        }),
        Payload::Cp(CpPayload {
            cfg_type: CfgType::REPLY,
            attributes: vec![CfgAttribute {
                attr_type: CfgAttrType::INTERNAL_IP6_ADDRESS,
                value: vec![0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 64],
            }],
        }),
        Payload::Eap(EapPayload {
            data: vec![1, 1, 0, 5, 1],
        }),
        Payload::Unknown {
            payload_type: PayloadType::GSPM,
            critical: false,
            body: vec![1, 2, 3],
        },
        Payload::Unknown {
            payload_type: PayloadType(200),
            critical: false,
            body: vec![],
        },
    ]
}

/// A test-only SK cipher: XOR with a key byte, a 4-octet "IV" (copied), padding to 4
/// octets with a pad-length octet, and an 8-octet ICV that is a keyed checksum over
/// prefix | IV | ciphertext. NOT secure; it exercises the SK framing, the prefix/AAD
/// contract and tamper detection without depending on the crypto module.
#[derive(Debug)]
pub struct ToyCipher {
    pub key: u8,
}

impl ToyCipher {
    const IV: usize = 4;
    const ICV: usize = 8;

    fn icv(&self, prefix: &[u8], sealed: &[u8]) -> [u8; 8] {
        // FNV-1a over key | prefix | sealed.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in std::iter::once(&self.key).chain(prefix).chain(sealed) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h.to_be_bytes()
    }
}

impl SkCipher for ToyCipher {
    fn sealed_len(&self, plaintext_len: usize) -> usize {
        let padded = (plaintext_len + 1).div_ceil(4) * 4;
        Self::IV + padded + Self::ICV
    }

    fn seal(&self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        let prefix_len = out.len();
        out.extend_from_slice(&[0x11, 0x22, 0x33, 0x44]);
        let padded = (plaintext.len() + 1).div_ceil(4) * 4;
        let pad = padded - plaintext.len() - 1;
        let mut p = plaintext.to_vec();
        p.extend(std::iter::repeat_n(0u8, pad));
        p.push(pad as u8);
        out.extend(p.iter().map(|b| b ^ self.key));
        let icv = self.icv(&out[..prefix_len], &out[prefix_len..]);
        out.extend_from_slice(&icv);
        Ok(())
    }

    fn open(&self, prefix: &[u8], body: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if body.len() < Self::IV + Self::ICV + 1 {
            return Err(CryptoError::IntegrityCheckFailed);
        }
        let (sealed, icv) = body.split_at(body.len() - Self::ICV);
        if self.icv(prefix, sealed) != icv {
            return Err(CryptoError::IntegrityCheckFailed);
        }
        let mut p: Vec<u8> = sealed[Self::IV..].iter().map(|b| b ^ self.key).collect();
        let pad = usize::from(*p.last().ok_or(CryptoError::InvalidPadding)?);
        if pad + 1 > p.len() {
            return Err(CryptoError::InvalidPadding);
        }
        p.truncate(p.len() - pad - 1);
        Ok(p)
    }
}
