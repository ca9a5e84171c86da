//! INITIAL_CONTACT (RFC 7296 §2.4) from our initiator: by default a second IKE SA with
//! the same identity replaces the first on the responder; with
//! `InitiatorOptions::omit_initial_contact` (load generation under one identity) the
//! responder keeps both.

// Test helper outside #[test] functions: a failed step is a failed test.
#![allow(clippy::expect_used)]

mod common;

use common::*;
use ike::initiator::InitiatorOptions;
use ike::wire::KeGroup;

/// Two IKE SAs from the same client identity, one after the other; returns how many
/// IKE SAs the gateway holds afterwards.
fn gateway_sas_after_two_initiations(opts: InitiatorOptions) -> usize {
    let mut net = Net::new();
    net.add(
        client_config(client_conn(KeGroup::CURVE25519, "client.example"), PSK),
        "192.0.2.2:500",
    );
    net.add(
        gateway_config(gateway_conn(&[KeGroup::CURVE25519], None)),
        "198.51.100.1:500",
    );
    let (l, r) = (net.nodes[0].addr, net.nodes[1].addr);
    for n in 1..=2 {
        let now = net.now;
        net.nodes[0]
            .ep
            .initiate(now, "home", l, r, opts)
            .expect("initiate");
        net.run();
        assert_eq!(net.nodes[0].ep.ike_sa_count(), n, "client holds both");
    }
    net.nodes[1].ep.ike_sa_count()
}

#[test]
fn initial_contact_replaces_the_older_sa_of_the_same_identity() {
    assert_eq!(
        gateway_sas_after_two_initiations(InitiatorOptions::default()),
        1
    );
}

#[test]
fn omitting_initial_contact_keeps_both_sas() {
    let opts = InitiatorOptions {
        omit_initial_contact: true,
        ..Default::default()
    };
    assert_eq!(gateway_sas_after_two_initiations(opts), 2);
}
