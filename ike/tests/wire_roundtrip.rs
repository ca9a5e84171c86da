//! Round trips of hand-built messages through encode → decode → encode, and golden
//! octets for the parts whose layout is easy to get wrong.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test helpers: a failure is a test failure

mod wire_common;

use ike::wire::*;
use wire_common::*;

fn round_trip(m: &Message) -> Vec<u8> {
    let bytes = m.try_encode().expect("encodes");
    let back = Message::decode(&bytes).expect("decodes");
    assert_eq!(back.payloads, m.payloads);
    assert_eq!(back.header.spi_i, m.header.spi_i);
    assert_eq!(back.header.message_id, m.header.message_id);
    assert_eq!(back.header.length as usize, bytes.len());
    assert_eq!(back.encode(), bytes, "decode→encode is byte-identical");
    bytes
}

#[test]
fn every_payload_type_round_trips_in_a_message() {
    let m = Message {
        header: header(ExchangeType::INFORMATIONAL, Flags::INITIATOR, 5),
        payloads: every_payload(),
    };
    let bytes = round_trip(&m);
    assert_eq!(
        bytes[16],
        PayloadType::SA.0,
        "header names the first payload"
    );
}

#[test]
fn every_payload_type_round_trips_as_an_inner_chain() {
    let payloads = every_payload();
    let (first, bytes) = try_encode_chain(&payloads).unwrap();
    assert_eq!(first, PayloadType::SA);
    assert_eq!(decode_chain(first, &bytes).unwrap(), payloads);
    assert_eq!(encode_chain(&payloads), (first, bytes));
}

#[test]
fn typical_messages_round_trip() {
    round_trip(&ike_sa_init_request());
    for inner in [ike_auth_inner(), create_child_sa_inner()] {
        let (first, bytes) = encode_chain(&inner);
        assert_eq!(decode_chain(first, &bytes).unwrap(), inner);
    }
}

#[test]
fn empty_message_round_trips() {
    let m = Message {
        header: header(ExchangeType::INFORMATIONAL, Flags::RESPONSE, 9),
        payloads: vec![],
    };
    let bytes = round_trip(&m);
    assert_eq!(bytes.len(), 28);
    assert_eq!(bytes[16], 0);
}

#[test]
fn sk_and_skf_round_trip_still_encrypted() {
    let sk = Message {
        header: header(ExchangeType::IKE_AUTH, Flags::INITIATOR, 1),
        payloads: vec![
            Payload::Notify(NotifyPayload::new(NotifyType(50000), vec![1])),
            Payload::Sk(SkPayload {
                first_inner: PayloadType::IDI,
                data: vec![0xab; 48],
            }),
        ],
    };
    let bytes = round_trip(&sk);
    // The notify's Next Payload is SK; SK's names the first inner payload.
    assert_eq!(bytes[28], PayloadType::SK.0);
    assert_eq!(bytes[28 + 9], PayloadType::IDI.0);

    let skf = Message {
        header: header(ExchangeType::IKE_AUTH, Flags::INITIATOR, 1),
        payloads: vec![Payload::Skf(SkfPayload {
            first_inner: PayloadType::NONE,
            fragment_number: 2,
            total_fragments: 3,
            data: vec![1; 20],
        })],
    };
    let bytes = round_trip(&skf);
    assert_eq!(&bytes[28..36], &[0, 0, 0, 28, 0, 2, 0, 3]);
}

#[test]
fn transform_attribute_golden_octets() {
    // One proposal, one transform with TV key length 256 and an empty TLV attribute.
    let sa = SaPayload {
        proposals: vec![Proposal {
            number: 1,
            protocol: ProtocolId::ESP,
            spi: vec![0xde, 0xad, 0xbe, 0xef],
            transforms: vec![Transform {
                transform_type: TransformType::ENCR,
                id: EncrId::AES_GCM_16.0,
                attributes: vec![
                    TransformAttribute {
                        attr_type: TransformAttributeType::KEY_LENGTH,
                        value: AttributeValue::Tv(256),
                    },
                    TransformAttribute {
                        attr_type: TransformAttributeType(0x1234),
                        value: AttributeValue::Tlv(vec![0xaa]),
                    },
                ],
            }],
        }],
    };
    let body = Payload::Sa(sa.clone()).encode_body();
    #[rustfmt::skip]
    let want = [
        0, 0, 0, 29,       // last proposal, reserved, length 29
        1, 3, 4, 1,        // number 1, ESP, SPI size 4, 1 transform
        0xde, 0xad, 0xbe, 0xef,
        0, 0, 0, 17,       // last transform, reserved, length 17
        1, 0, 0, 20,       // ENCR, reserved, AES_GCM_16
        0x80, 14, 1, 0,    // AF=1 KEY_LENGTH = 256
        0x12, 0x34, 0, 1, 0xaa, // AF=0 type 0x1234, length 1, value
    ];
    assert_eq!(body, want);
    let (first, chain) = encode_chain(&[Payload::Sa(sa.clone())]);
    assert_eq!(decode_chain(first, &chain).unwrap(), vec![Payload::Sa(sa)]);
}

#[test]
fn traffic_selector_golden_octets() {
    let ts = ts_v4_v6();
    let body = Payload::TsI(ts).encode_body();
    assert_eq!(&body[..4], &[2, 0, 0, 0]);
    // IPv4 range: type 7, any protocol, length 16, ports 0-65535, 10.0.0.0-10.0.255.255.
    assert_eq!(
        &body[4..20],
        &[
            7, 0, 0, 16, 0, 0, 0xff, 0xff, 10, 0, 0, 0, 10, 0, 0xff, 0xff
        ]
    );
    // IPv6 range: type 8, TCP, length 40, port 443-443.
    assert_eq!(&body[20..28], &[8, 6, 0, 40, 1, 0xbb, 1, 0xbb]);
    assert_eq!(body.len(), 4 + 16 + 40);
}

#[test]
fn known_payload_critical_bit_is_accepted_and_cleared() {
    let m = ike_sa_init_request();
    let mut bytes = m.encode();
    bytes[28 + 1] = 0x80; // critical bit on the SA payload
    let back = Message::decode(&bytes).unwrap();
    assert_eq!(back.payloads, m.payloads);
    assert_eq!(back.encode()[29], 0, "RFC 7296 §2.5: sent as zero");
}

#[test]
fn unknown_non_critical_payload_and_notify_round_trip() {
    let m = Message {
        header: header(ExchangeType::INFORMATIONAL, 0, 3),
        payloads: vec![
            Payload::Unknown {
                payload_type: PayloadType(222),
                critical: false,
                body: vec![5; 10],
            },
            Payload::Notify(NotifyPayload::new(NotifyType(0x7fff), vec![9, 9])),
        ],
    };
    round_trip(&m);
}

#[test]
fn header_fields_survive_and_lengths_are_recomputed() {
    let mut m = ike_sa_init_request();
    m.header.length = 12345;
    m.header.next_payload = PayloadType::EAP;
    m.header.flags = Flags(Flags::INITIATOR | Flags::VERSION);
    let bytes = m.encode();
    let v = HeaderView::new_checked(&bytes[..]).unwrap();
    assert_eq!(v.length() as usize, bytes.len());
    assert_eq!(v.next_payload(), PayloadType::SA);
    assert_eq!(v.flags(), Flags(Flags::INITIATOR | Flags::VERSION));
    assert_eq!(v.exchange(), ExchangeType::IKE_SA_INIT);
}

#[test]
fn typed_notify_data_round_trips() {
    let d = MessageIdSyncData {
        nonce: 0xdeadbeef,
        expected_send_req_message_id: 10,
        expected_recv_req_message_id: 20,
    };
    let n = NotifyPayload::message_id_sync(&d);
    assert_eq!(n.data.len(), 12);
    assert_eq!(&n.data[..4], &[0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(n.as_message_id_sync().unwrap(), d);

    for (esn, len) in [(false, 4), (true, 8)] {
        let r = ReplayCounterSyncData {
            delta: 0x1_0000_0002 & if esn { u64::MAX } else { 0xffff_ffff },
            esn,
        };
        let n = NotifyPayload::replay_counter_sync(&r);
        assert_eq!(n.data.len(), len);
        assert_eq!(n.as_replay_counter_sync().unwrap(), r);
    }

    assert_eq!(
        NotifyPayload::set_window_size(7)
            .as_set_window_size()
            .unwrap(),
        7
    );
    let algs = [HashAlgorithm::SHA2_256, HashAlgorithm(77)];
    assert_eq!(
        NotifyPayload::signature_hash_algorithms(&algs)
            .as_signature_hash_algorithms()
            .unwrap(),
        algs
    );
    assert_eq!(
        NotifyPayload::nat_detection_source_ip([3; 20])
            .as_nat_detection_hash()
            .unwrap(),
        [3; 20]
    );
    assert_eq!(
        NotifyPayload::cookie(&[1; 64])
            .unwrap()
            .as_cookie()
            .unwrap(),
        &[1; 64]
    );
    assert!(NotifyPayload::cookie(&[]).is_err());
    assert!(NotifyPayload::cookie(&[1; 65]).is_err());
    assert_eq!(
        NotifyPayload::invalid_ke_payload(KeGroup::ECP_384)
            .as_invalid_ke_payload()
            .unwrap(),
        KeGroup::ECP_384
    );
    let rekey = NotifyPayload::rekey_sa(ProtocolId::ESP, 0x01020304);
    assert_eq!(rekey.as_rekey_sa().unwrap(), (ProtocolId::ESP, 0x01020304));
    assert_eq!(
        NotifyPayload::unsupported_critical_payload(PayloadType(99))
            .as_unsupported_critical_payload()
            .unwrap(),
        PayloadType(99)
    );
}

#[test]
fn typed_notify_data_rejects_wrong_lengths_and_types() {
    let bad = |t: NotifyType, data: Vec<u8>| NotifyPayload::new(t, data);
    assert!(
        bad(NotifyType::IKEV2_MESSAGE_ID_SYNC, vec![0; 11])
            .as_message_id_sync()
            .is_err()
    );
    assert!(
        bad(NotifyType::IKEV2_MESSAGE_ID_SYNC, vec![0; 13])
            .as_message_id_sync()
            .is_err()
    );
    assert!(
        bad(NotifyType::COOKIE, vec![0; 12])
            .as_message_id_sync()
            .is_err()
    );
    for len in [0, 3, 5, 7, 9] {
        assert!(
            bad(NotifyType::IPSEC_REPLAY_COUNTER_SYNC, vec![0; len])
                .as_replay_counter_sync()
                .is_err()
        );
    }
    assert!(
        bad(NotifyType::SET_WINDOW_SIZE, vec![0; 2])
            .as_set_window_size()
            .is_err()
    );
    assert!(
        bad(NotifyType::SIGNATURE_HASH_ALGORITHMS, vec![0; 3])
            .as_signature_hash_algorithms()
            .is_err()
    );
    assert!(
        bad(NotifyType::NAT_DETECTION_SOURCE_IP, vec![0; 19])
            .as_nat_detection_hash()
            .is_err()
    );
    assert!(bad(NotifyType::COOKIE, vec![]).as_cookie().is_err());
    assert!(bad(NotifyType::COOKIE, vec![0; 65]).as_cookie().is_err());
    assert!(
        bad(NotifyType::INVALID_KE_PAYLOAD, vec![0; 3])
            .as_invalid_ke_payload()
            .is_err()
    );
    let mut rekey = NotifyPayload::rekey_sa(ProtocolId::ESP, 1);
    rekey.spi = vec![0; 8];
    assert!(rekey.as_rekey_sa().is_err());
    assert!(
        bad(NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD, vec![1, 2])
            .as_unsupported_critical_payload()
            .is_err()
    );
    assert_eq!(
        bad(NotifyType::SET_WINDOW_SIZE, vec![0; 5]).as_set_window_size(),
        Err(DecodeError::BadNotifyData {
            notify_type: NotifyType::SET_WINDOW_SIZE,
            len: 5
        })
    );
}

#[test]
fn notify_helpers_find_notifies() {
    let m = ike_sa_init_request();
    assert_eq!(notifies(&m.payloads).count(), 4);
    assert!(find_notify(&m.payloads, NotifyType::IKEV2_FRAGMENTATION_SUPPORTED).is_some());
    assert!(find_notify(&m.payloads, NotifyType::COOKIE).is_none());
    assert!(find_error_notify(&m.payloads).is_none());
    let mut p = m.payloads.clone();
    p.push(Payload::Notify(NotifyPayload::invalid_ke_payload(
        KeGroup::ECP_256,
    )));
    assert_eq!(
        find_error_notify(&p).unwrap().notify_type,
        NotifyType::INVALID_KE_PAYLOAD
    );
}

#[test]
fn try_encode_reports_unrepresentable_values() {
    let mut m = ike_sa_init_request();
    m.payloads.push(Payload::VendorId(VendorIdPayload {
        data: vec![0; 70_000],
    }));
    assert_eq!(
        m.try_encode(),
        Err(EncodeError::PayloadTooLong {
            payload: PayloadType::VENDOR_ID
        })
    );
    let misplaced = Message {
        header: header(ExchangeType::IKE_AUTH, 0, 1),
        payloads: vec![
            Payload::Sk(SkPayload {
                first_inner: PayloadType::NONE,
                data: vec![],
            }),
            nonce(16, 0),
        ],
    };
    assert_eq!(
        misplaced.try_encode(),
        Err(EncodeError::MisplacedEncryptedPayload)
    );
    assert!(try_encode_chain(&misplaced.payloads).is_err());
}
