use super::*;
use crate::config::{EncrAlg, EspProposalConfig, IkeProposalConfig};
use crate::crypto::DEFAULT_PROVIDER;
use crate::wire::payload::{AttributeValue, Proposal, SaPayload, Transform, TransformAttribute};
use crate::wire::registry::{
    EncrId, EsnId, IntegId, KeGroup, NotifyType, PrfId, ProtocolId, TransformAttributeType,
    TransformType,
};

fn ike(s: &str) -> IkeProposalConfig {
    parse_ike_proposal(s).unwrap()
}

fn esp(s: &str) -> EspProposalConfig {
    parse_esp_proposal(s).unwrap()
}

const GCM128: EncrAlg = EncrAlg {
    id: EncrId::AES_GCM_16,
    key_bits: 128,
};
const GCM256: EncrAlg = EncrAlg {
    id: EncrId::AES_GCM_16,
    key_bits: 256,
};
const CBC128: EncrAlg = EncrAlg {
    id: EncrId::AES_CBC,
    key_bits: 128,
};
const CBC256: EncrAlg = EncrAlg {
    id: EncrId::AES_CBC,
    key_bits: 256,
};
const CHACHA: EncrAlg = EncrAlg {
    id: EncrId::CHACHA20_POLY1305,
    key_bits: 0,
};

fn t(ty: TransformType, id: u16) -> Transform {
    Transform {
        transform_type: ty,
        id,
        attributes: vec![],
    }
}

fn enc(id: EncrId, bits: u16) -> Transform {
    Transform {
        transform_type: TransformType::ENCR,
        id: id.0,
        attributes: vec![TransformAttribute {
            attr_type: TransformAttributeType::KEY_LENGTH,
            value: AttributeValue::Tv(bits),
        }],
    }
}

fn prop(number: u8, protocol: ProtocolId, spi: &[u8], transforms: Vec<Transform>) -> Proposal {
    Proposal {
        number,
        protocol,
        spi: spi.to_vec(),
        transforms,
    }
}

fn sa(proposals: Vec<Proposal>) -> SaPayload {
    SaPayload { proposals }
}

#[test]
fn parses_the_documented_ike_examples() {
    let p = ike("aes128gcm16-prfsha256-x25519");
    assert_eq!(p.encr, vec![GCM128]);
    assert!(p.integ.is_empty());
    assert_eq!(p.prf, vec![PrfId::HMAC_SHA2_256]);
    assert_eq!(p.ke, vec![KeGroup::CURVE25519]);

    let p = ike("aes256gcm16-prfsha384-ecp384");
    assert_eq!(
        (p.encr[0], p.prf[0], p.ke[0]),
        (GCM256, PrfId::HMAC_SHA2_384, KeGroup::ECP_384)
    );

    let p = ike("chacha20poly1305-prfsha256-curve25519");
    assert_eq!(p.encr, vec![CHACHA]);
    assert_eq!(p.ke, vec![KeGroup::CURVE25519]);

    // `sha256` alone is both integrity and PRF in IKE.
    let p = ike("aes256-sha256-modp2048");
    assert_eq!(p.encr, vec![CBC256]);
    assert_eq!(p.integ, vec![IntegId::HMAC_SHA2_256_128]);
    assert_eq!(p.prf, vec![PrfId::HMAC_SHA2_256]);
    assert_eq!(p.ke, vec![KeGroup::MODP_2048]);

    let p = ike("aes128-aes256-sha256-sha384-prfsha256-modp3072-ecp256");
    assert_eq!(p.encr, vec![CBC128, CBC256]);
    assert_eq!(
        p.integ,
        vec![IntegId::HMAC_SHA2_256_128, IntegId::HMAC_SHA2_384_192]
    );
    assert_eq!(
        p.prf,
        vec![PrfId::HMAC_SHA2_256],
        "explicit prf: integ not added as PRF"
    );
    assert_eq!(p.ke, vec![KeGroup::MODP_3072, KeGroup::ECP_256]);

    // AEAD with an integrity keyword and no prf: the keyword is the PRF.
    let p = ike("aes256gcm16-sha384-ecp384");
    assert!(p.integ.is_empty());
    assert_eq!(p.prf, vec![PrfId::HMAC_SHA2_384]);

    // Aliases and ICV variants map to the right IDs.
    assert_eq!(
        ike("aes128gcm8-prfsha2_256-x25519").encr[0].id,
        EncrId::AES_GCM_8
    );
    assert_eq!(
        ike("aes128gcm12-prfsha256-x25519").encr[0].id,
        EncrId::AES_GCM_12
    );
    assert_eq!(ike("aes256gcm128-prfsha256-x25519").encr[0], GCM256);
    assert_eq!(
        ike("AES128-SHA2_512-ECP521").integ,
        vec![IntegId::HMAC_SHA2_512_256]
    );
    assert!(ike("default").ke.contains(&KeGroup::CURVE25519));
}

#[test]
fn parses_the_documented_esp_examples() {
    assert_eq!(esp("aes128gcm16").encr, vec![GCM128]);
    assert_eq!(esp("aes256gcm16").encr, vec![GCM256]);
    assert_eq!(esp("chacha20poly1305").encr, vec![CHACHA]);
    let p = esp("aes256-sha256");
    assert_eq!(
        (p.encr.clone(), p.integ.clone()),
        (vec![CBC256], vec![IntegId::HMAC_SHA2_256_128])
    );
    assert!(p.ke.is_empty() && p.esn.is_empty());
    assert_eq!(esp("aes128gcm16-x25519").ke, vec![KeGroup::CURVE25519]);
    assert_eq!(esp("aes128gcm16-esn").esn, vec![EsnId::ESN]);
    assert_eq!(esp("aes128gcm16-noesn").esn, vec![EsnId::NO_ESN]);
    assert_eq!(
        esp("aes128gcm16-esn-noesn").esn,
        vec![EsnId::ESN, EsnId::NO_ESN]
    );
    assert!(!esp("default").encr.is_empty());
}

#[test]
fn parse_errors_name_the_token_and_the_proposal() {
    let e = parse_ike_proposal("aes999-sha256-modp2048").unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown algorithm \"aes999\" in proposal \"aes999-sha256-modp2048\""
    );
    assert!(matches!(
        parse_ike_proposal("aes128-sha256").unwrap_err(),
        ProposalError::Missing { what, .. } if what.starts_with("key exchange")
    ));
    assert!(matches!(
        parse_esp_proposal("aes128").unwrap_err(),
        ProposalError::Missing { what, .. } if what.starts_with("integrity")
    ));
    assert!(matches!(
        parse_ike_proposal("aes128-prfsha256-x25519").unwrap_err(),
        ProposalError::Missing { what, .. } if what.starts_with("integrity")
    ));
    assert!(matches!(
        parse_ike_proposal("sha256-prfsha256-x25519").unwrap_err(),
        ProposalError::Missing { what, .. } if what.starts_with("encryption")
    ));
    assert!(matches!(
        parse_ike_proposal("aes128gcm16-x25519").unwrap_err(),
        ProposalError::Missing { what, .. } if what.starts_with("pseudorandom")
    ));
    let e = parse_esp_proposal("aes128gcm16-sha256").unwrap_err();
    assert!(matches!(e, ProposalError::AeadWithIntegrity { .. }));
    assert!(e.to_string().contains("remove \"sha256\""), "{e}");
    assert!(matches!(
        parse_ike_proposal("aes128gcm16-sha256-prfsha256-x25519").unwrap_err(),
        ProposalError::AeadWithIntegrity { .. }
    ));
    assert_eq!(
        parse_esp_proposal("aes128gcm16-prfsha256")
            .unwrap_err()
            .to_string(),
        "\"prfsha256\" is not valid in an ESP proposal (\"aes128gcm16-prfsha256\")"
    );
    assert!(matches!(
        parse_ike_proposal("aes128gcm16-prfsha256-x25519-esn").unwrap_err(),
        ProposalError::WrongKind { kind: "IKE", .. }
    ));
    assert!(matches!(
        parse_esp_proposal("aes128--sha256").unwrap_err(),
        ProposalError::EmptyToken { .. }
    ));
    assert!(matches!(
        parse_esp_proposal("").unwrap_err(),
        ProposalError::EmptyToken { .. }
    ));
    assert!(matches!(
        parse_esp_proposal("aes128gcm16-aes").unwrap_err(),
        ProposalError::Missing { .. }
    ));
    assert!(parse_esp_proposal("aes128gcm17").is_err());
    assert!(parse_esp_proposal("aes1289").is_err());
}

/// What strongSwan's default initiator sends, roughly: an AEAD proposal and a CBC one.
fn strongswan_like_offer(ke_first: KeGroup) -> SaPayload {
    sa(vec![
        prop(
            1,
            ProtocolId::IKE,
            &[],
            vec![
                enc(EncrId::AES_CBC, 128),
                enc(EncrId::AES_CBC, 256),
                t(TransformType::INTEG, IntegId::HMAC_SHA2_256_128.0),
                t(TransformType::INTEG, IntegId::HMAC_SHA2_384_192.0),
                t(TransformType::PRF, PrfId::HMAC_SHA2_256.0),
                t(TransformType::PRF, PrfId::HMAC_SHA2_384.0),
                t(TransformType::KE, ke_first.0),
                t(TransformType::KE, KeGroup::MODP_2048.0),
            ],
        ),
        prop(
            2,
            ProtocolId::IKE,
            &[],
            vec![
                enc(EncrId::AES_GCM_16, 256),
                enc(EncrId::AES_GCM_16, 128),
                t(TransformType::PRF, PrfId::HMAC_SHA2_256.0),
                t(TransformType::KE, ke_first.0),
                t(TransformType::KE, KeGroup::MODP_2048.0),
            ],
        ),
    ])
}

#[test]
fn select_ike_follows_our_preference_and_echoes_one_transform_per_type() {
    let offer = strongswan_like_offer(KeGroup::CURVE25519);
    let ours = [
        ike("aes128gcm16-prfsha256-x25519"),
        ike("aes256-sha256-modp2048"),
    ];
    let (p, suite) =
        select_ike(&offer, &ours, Some(KeGroup::CURVE25519), &DEFAULT_PROVIDER).unwrap();
    assert_eq!(
        suite,
        IkeSuite {
            encr: GCM128,
            integ: IntegId::NONE,
            prf: PrfId::HMAC_SHA2_256,
            ke: KeGroup::CURVE25519
        }
    );
    assert_eq!(p.number, 2, "the peer's proposal number is echoed");
    assert_eq!(
        p.transforms,
        vec![
            enc(EncrId::AES_GCM_16, 128),
            t(TransformType::PRF, PrfId::HMAC_SHA2_256.0),
            t(TransformType::KE, KeGroup::CURVE25519.0),
        ]
    );

    // Our CBC proposal first: the peer's proposal 1, our algorithm order within it.
    let ours = [ike("aes256-aes128-sha384-sha256-modp2048-x25519")];
    let (p, suite) =
        select_ike(&offer, &ours, Some(KeGroup::CURVE25519), &DEFAULT_PROVIDER).unwrap();
    assert_eq!(p.number, 1);
    assert_eq!(suite.encr, CBC256);
    assert_eq!(suite.integ, IntegId::HMAC_SHA2_384_192);
    assert_eq!(suite.prf, PrfId::HMAC_SHA2_384);
    // The peer's KE group is acceptable within this proposal: no round trip.
    assert_eq!(suite.ke, KeGroup::CURVE25519);
    assert_eq!(p.transforms.len(), 4);
    for ty in [
        TransformType::ENCR,
        TransformType::INTEG,
        TransformType::PRF,
        TransformType::KE,
    ] {
        assert_eq!(
            p.transforms
                .iter()
                .filter(|t| t.transform_type == ty)
                .count(),
            1
        );
    }
    assert_eq!(
        p.transforms[0].key_length(),
        Some(256),
        "key length attribute kept"
    );
}

#[test]
fn select_ike_asks_for_another_group_with_invalid_ke() {
    let offer = strongswan_like_offer(KeGroup::CURVE25519);
    let ours = [ike("aes128gcm16-prfsha256-modp2048")];
    let err = select_ike(&offer, &ours, Some(KeGroup::CURVE25519), &DEFAULT_PROVIDER).unwrap_err();
    assert_eq!(err, SelectError::InvalidKe(KeGroup::MODP_2048));
    assert_eq!(err.notify_type(), NotifyType::INVALID_KE_PAYLOAD);
    assert_eq!(err.notify_data(), vec![0, 14]);
    let n = err.to_notify();
    assert_eq!(
        (n.protocol, n.spi.len(), n.data.as_slice()),
        (ProtocolId::NONE, 0, &[0u8, 14][..])
    );

    // A retry with the group we asked for succeeds.
    let (_, suite) =
        select_ike(&offer, &ours, Some(KeGroup::MODP_2048), &DEFAULT_PROVIDER).unwrap();
    assert_eq!(suite.ke, KeGroup::MODP_2048);

    // A group the peer did not offer at all: no proposal, not INVALID_KE.
    let ours = [ike("aes128gcm16-prfsha256-ecp384")];
    let err = select_ike(&offer, &ours, Some(KeGroup::CURVE25519), &DEFAULT_PROVIDER).unwrap_err();
    assert_eq!(err, SelectError::NoProposalChosen);
    assert_eq!(err.notify_type(), NotifyType::NO_PROPOSAL_CHOSEN);
    assert!(err.notify_data().is_empty());
}

#[test]
fn select_ike_uses_only_what_the_provider_implements() {
    // MODP-4096 and PRF_HMAC_SHA1 parse, but the default provider has neither.
    let offer = sa(vec![prop(
        1,
        ProtocolId::IKE,
        &[],
        vec![
            enc(EncrId::AES_CBC, 128),
            t(TransformType::INTEG, IntegId::HMAC_SHA2_256_128.0),
            t(TransformType::PRF, PrfId::HMAC_SHA1.0),
            t(TransformType::PRF, PrfId::HMAC_SHA2_256.0),
            t(TransformType::KE, KeGroup::MODP_4096.0),
            t(TransformType::KE, KeGroup::MODP_2048.0),
        ],
    )]);
    let ours = [ike("aes128-sha256-prfsha1-prfsha256-modp4096-modp2048")];
    let err = select_ike(&offer, &ours, Some(KeGroup::MODP_4096), &DEFAULT_PROVIDER).unwrap_err();
    assert_eq!(err, SelectError::InvalidKe(KeGroup::MODP_2048));
    let (_, suite) =
        select_ike(&offer, &ours, Some(KeGroup::MODP_2048), &DEFAULT_PROVIDER).unwrap();
    assert_eq!(suite.prf, PrfId::HMAC_SHA2_256);

    let only_unsupported = [ike("aes128-sha256-prfsha1-modp4096")];
    assert_eq!(
        select_ike(
            &offer,
            &only_unsupported,
            Some(KeGroup::MODP_4096),
            &DEFAULT_PROVIDER
        ),
        Err(SelectError::NoProposalChosen)
    );
}

#[test]
fn select_ike_rejects_unknown_types_and_skips_unknown_ids() {
    let body = vec![
        t(TransformType::ENCR, 1024), // unknown ID: skipped
        enc(EncrId::AES_GCM_16, 128),
        t(TransformType::PRF, PrfId::HMAC_SHA2_256.0),
        t(TransformType::KE, KeGroup::CURVE25519.0),
    ];
    let mut with_unknown_type = body.clone();
    with_unknown_type.push(t(TransformType(6), 1)); // RFC 9370 ADDKE1: we do not know it
    let offer = sa(vec![
        prop(1, ProtocolId::IKE, &[], with_unknown_type),
        prop(2, ProtocolId::ESP, &[1, 2, 3, 4], body.clone()),
        prop(3, ProtocolId::IKE, &[], body),
    ]);
    let ours = [ike("aes128gcm16-prfsha256-x25519")];
    let (p, _) = select_ike(&offer, &ours, Some(KeGroup::CURVE25519), &DEFAULT_PROVIDER).unwrap();
    assert_eq!(p.number, 3);
    assert_eq!(p.transforms.len(), 3);

    // An ESN transform has no place in an IKE proposal either.
    let offer = sa(vec![prop(
        1,
        ProtocolId::IKE,
        &[],
        vec![
            enc(EncrId::AES_GCM_16, 128),
            t(TransformType::PRF, PrfId::HMAC_SHA2_256.0),
            t(TransformType::KE, KeGroup::CURVE25519.0),
            t(TransformType::ESN, 0),
        ],
    )]);
    assert_eq!(
        select_ike(&offer, &ours, Some(KeGroup::CURVE25519), &DEFAULT_PROVIDER),
        Err(SelectError::NoProposalChosen)
    );
}

#[test]
fn select_ike_handles_aead_with_integ_none_and_unreadable_attributes() {
    let offer = sa(vec![prop(
        1,
        ProtocolId::IKE,
        &[],
        vec![
            // A TLV key length is not readable: this transform is skipped.
            Transform {
                transform_type: TransformType::ENCR,
                id: EncrId::AES_GCM_16.0,
                attributes: vec![TransformAttribute {
                    attr_type: TransformAttributeType::KEY_LENGTH,
                    value: AttributeValue::Tlv(vec![1, 0]),
                }],
            },
            t(TransformType::ENCR, EncrId::CHACHA20_POLY1305.0),
            t(TransformType::INTEG, IntegId::NONE.0),
            t(TransformType::PRF, PrfId::HMAC_SHA2_512.0),
            t(TransformType::KE, KeGroup::ECP_256.0),
        ],
    )]);
    let ours = [ike("aes128gcm16-chacha20poly1305-prfsha512-ecp256")];
    let (p, suite) = select_ike(&offer, &ours, Some(KeGroup::ECP_256), &DEFAULT_PROVIDER).unwrap();
    assert_eq!(suite.encr, CHACHA);
    assert_eq!(suite.integ, IntegId::NONE);
    assert!(
        p.transforms.contains(&t(TransformType::INTEG, 0)),
        "INTEG NONE echoed"
    );
    assert_eq!(p.transforms.len(), 4);
}

fn esp_offer(spi: [u8; 4], transforms: Vec<Transform>) -> SaPayload {
    sa(vec![prop(1, ProtocolId::ESP, &spi, transforms)])
}

#[test]
fn select_child_in_ike_auth_ignores_ke_transforms_and_keeps_the_spi() {
    let offer = esp_offer(
        [0xc0, 0xff, 0xee, 0x01],
        vec![
            enc(EncrId::AES_GCM_16, 128),
            enc(EncrId::AES_GCM_16, 256),
            t(TransformType::KE, KeGroup::CURVE25519.0),
            t(TransformType::ESN, EsnId::ESN.0),
            t(TransformType::ESN, EsnId::NO_ESN.0),
        ],
    );
    let ours = [esp("aes256gcm16-x25519")];
    let (p, suite) = select_child(&offer, &ours, None, false).unwrap();
    assert_eq!(
        suite,
        ChildSuite {
            encr: GCM256,
            integ: IntegId::NONE,
            ke: None,
            esn: false
        }
    );
    assert_eq!(esp_spi(&p), Some(0xc0ff_ee01));
    assert_eq!(
        p.transforms,
        vec![
            enc(EncrId::AES_GCM_16, 256),
            t(TransformType::ESN, EsnId::NO_ESN.0)
        ]
    );
    let (_, suite) = select_child(&offer, &[esp("aes128gcm16-esn")], None, false).unwrap();
    assert!(suite.esn);
}

#[test]
fn select_child_requires_esn_and_a_4_octet_spi() {
    let no_esn = esp_offer([0, 0, 0, 1], vec![enc(EncrId::AES_GCM_16, 128)]);
    assert_eq!(
        select_child(&no_esn, &[esp("aes128gcm16")], None, false),
        Err(SelectError::NoProposalChosen)
    );
    let short_spi = sa(vec![prop(
        1,
        ProtocolId::ESP,
        &[0, 1],
        vec![enc(EncrId::AES_GCM_16, 128), t(TransformType::ESN, 0)],
    )]);
    assert_eq!(
        select_child(&short_spi, &[esp("aes128gcm16")], None, false),
        Err(SelectError::NoProposalChosen)
    );
    // A PRF has no place in an ESP proposal.
    let with_prf = esp_offer(
        [0, 0, 0, 1],
        vec![
            enc(EncrId::AES_GCM_16, 128),
            t(TransformType::PRF, PrfId::HMAC_SHA2_256.0),
            t(TransformType::ESN, 0),
        ],
    );
    assert_eq!(
        select_child(&with_prf, &[esp("aes128gcm16")], None, false),
        Err(SelectError::NoProposalChosen)
    );
}

#[test]
fn select_child_cbc_needs_a_common_integrity_algorithm() {
    let offer = esp_offer(
        [0, 0, 0, 9],
        vec![
            enc(EncrId::AES_CBC, 256),
            t(TransformType::INTEG, IntegId::HMAC_SHA1_96.0),
            t(TransformType::INTEG, IntegId::HMAC_SHA2_256_128.0),
            t(TransformType::ESN, 0),
        ],
    );
    let (_, suite) = select_child(&offer, &[esp("aes256-sha512-sha256")], None, false).unwrap();
    assert_eq!(suite.integ, IntegId::HMAC_SHA2_256_128);
    assert_eq!(
        select_child(&offer, &[esp("aes256-sha384")], None, false),
        Err(SelectError::NoProposalChosen)
    );
}

#[test]
fn select_child_with_pfs_in_create_child_sa() {
    let offer = esp_offer(
        [0, 0, 0, 7],
        vec![
            enc(EncrId::AES_GCM_16, 128),
            t(TransformType::KE, KeGroup::ECP_256.0),
            t(TransformType::KE, KeGroup::CURVE25519.0),
            t(TransformType::ESN, 0),
        ],
    );
    let ours = [esp("aes128gcm16-x25519")];
    // KE payload in our group: PFS with it.
    let (p, suite) = select_child(&offer, &ours, Some(KeGroup::CURVE25519), true).unwrap();
    assert_eq!(suite.ke, Some(KeGroup::CURVE25519));
    assert!(
        p.transforms
            .contains(&t(TransformType::KE, KeGroup::CURVE25519.0))
    );
    // KE payload in another offered group: ask for ours.
    assert_eq!(
        select_child(&offer, &ours, Some(KeGroup::ECP_256), true),
        Err(SelectError::InvalidKe(KeGroup::CURVE25519))
    );
    // No KE payload, but we require PFS.
    assert_eq!(
        select_child(&offer, &ours, None, true),
        Err(SelectError::NoProposalChosen)
    );
    // No PFS configured: a KE-only offer is unacceptable, one that allows NONE is fine.
    let no_pfs = [esp("aes128gcm16")];
    assert_eq!(
        select_child(&offer, &no_pfs, Some(KeGroup::ECP_256), true),
        Err(SelectError::NoProposalChosen)
    );
    let mut offer_none = offer.clone();
    offer_none.proposals[0]
        .transforms
        .insert(3, t(TransformType::KE, KeGroup::NONE.0));
    let (p, suite) = select_child(&offer_none, &no_pfs, Some(KeGroup::ECP_256), true).unwrap();
    assert_eq!(suite.ke, None);
    assert!(p.transforms.contains(&t(TransformType::KE, 0)));
    // Without a KE payload and without PFS configured: a plain rekey.
    let (_, suite) = select_child(&offer, &no_pfs, None, true).unwrap();
    assert_eq!(suite.ke, None);
}

#[test]
fn initiator_payloads_round_trip_through_selection() {
    let ours = [
        ike("aes128gcm16-aes256-sha256-prfsha256-x25519-modp2048"),
        ike("chacha20poly1305-prfsha384-ecp384"),
    ];
    let sent = ike_sa_payload(&ours, &[]);
    // The mixed proposal is split in two: AEAD and CBC+HMAC.
    assert_eq!(sent.proposals.len(), 3);
    assert_eq!(
        sent.proposals.iter().map(|p| p.number).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(
        !sent.proposals[0]
            .transforms
            .iter()
            .any(|t| t.transform_type == TransformType::INTEG)
    );
    assert!(
        sent.proposals[1]
            .transforms
            .contains(&t(TransformType::INTEG, IntegId::HMAC_SHA2_256_128.0))
    );

    let responder_cfg = [ike("aes256-sha256-modp2048")];
    let (chosen, suite) = select_ike(
        &sent,
        &responder_cfg,
        Some(KeGroup::MODP_2048),
        &DEFAULT_PROVIDER,
    )
    .unwrap();
    let response = sa(vec![chosen.clone()]);
    assert_eq!(accept_ike_response(&sent, &response).unwrap(), suite);

    // Two proposals, a transform we did not offer, a duplicate type: all rejected.
    let two = sa(vec![chosen.clone(), chosen.clone()]);
    assert!(matches!(
        accept_ike_response(&sent, &two),
        Err(SelectError::BadResponse(_))
    ));
    let mut other = chosen.clone();
    other.transforms[0] = enc(EncrId::AES_CBC, 192);
    assert!(matches!(
        accept_ike_response(&sent, &sa(vec![other])),
        Err(SelectError::BadResponse(m)) if m.contains("not offered")
    ));
    let mut dup = chosen.clone();
    dup.transforms
        .push(t(TransformType::KE, KeGroup::CURVE25519.0));
    assert!(matches!(
        accept_ike_response(&sent, &sa(vec![dup])),
        Err(SelectError::BadResponse(m)) if m.contains("more than one")
    ));
    let mut no_ke = chosen;
    no_ke
        .transforms
        .retain(|t| t.transform_type != TransformType::KE);
    assert!(matches!(
        accept_ike_response(&sent, &sa(vec![no_ke])),
        Err(SelectError::BadResponse(_))
    ));
}

#[test]
fn esp_initiator_payload_round_trips() {
    let ours = [esp("aes256gcm16-ecp256-esn-noesn"), esp("aes128-sha256")];
    let sent = esp_sa_payload(&ours, 0x0102_0304, true);
    assert_eq!(sent.proposals.len(), 2);
    assert!(sent.proposals.iter().all(|p| p.spi == [1, 2, 3, 4]));
    assert!(
        sent.proposals[1]
            .transforms
            .contains(&t(TransformType::ESN, EsnId::NO_ESN.0))
    );

    let (mut chosen, suite) = select_child(
        &sent,
        &[esp("aes256gcm16-ecp256-esn")],
        Some(KeGroup::ECP_256),
        true,
    )
    .unwrap();
    assert_eq!(suite.ke, Some(KeGroup::ECP_256));
    assert!(suite.esn);
    chosen.spi = vec![9, 9, 9, 9]; // the responder's inbound SPI
    let (got, spi) = accept_child_response(&sent, &sa(vec![chosen.clone()])).unwrap();
    assert_eq!((got, spi), (suite, 0x0909_0909));

    // We required PFS in proposal 1; a response without KE is refused.
    let mut no_ke = chosen;
    no_ke
        .transforms
        .retain(|t| t.transform_type != TransformType::KE);
    assert!(matches!(
        accept_child_response(&sent, &sa(vec![no_ke])),
        Err(SelectError::BadResponse(m)) if m.contains("PFS")
    ));

    // Without KE (IKE_AUTH) no KE transform is sent at all.
    let sent = esp_sa_payload(&ours, 1, false);
    assert!(sent.proposals.iter().all(|p| {
        p.transforms
            .iter()
            .all(|t| t.transform_type != TransformType::KE)
    }));
}

#[test]
fn sa_to_string_shows_what_was_offered() {
    let s = sa_to_string(&strongswan_like_offer(KeGroup::CURVE25519));
    assert!(
        s.starts_with("#1 IKE: AES_CBC_128/AES_CBC_256/HMAC_SHA2_256_128"),
        "{s}"
    );
    assert!(
        s.contains("#2 IKE: AES_GCM_16_256/AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE25519"),
        "{s}"
    );
}
