use super::*;
use crate::config::{Identity, IdentityPattern};
use crate::wire::registry::IdType;

fn id(s: &str) -> Identity {
    Identity::parse(s).unwrap()
}

#[test]
fn parses_each_form_to_its_type() {
    assert_eq!(
        id("192.0.2.1"),
        Identity {
            id_type: IdType::IPV4_ADDR,
            data: vec![192, 0, 2, 1]
        }
    );
    let v6 = id("2001:db8::1");
    assert_eq!(v6.id_type, IdType::IPV6_ADDR);
    assert_eq!(v6.data.len(), 16);
    assert_eq!(v6.data[15], 1);
    assert_eq!(id("user@example.com").id_type, IdType::RFC822_ADDR);
    assert_eq!(id("user@example.com").data, b"user@example.com");
    assert_eq!(id("gw.example").id_type, IdType::FQDN);
    assert_eq!(id("@gw.example"), id("gw.example"));
    // `@` keeps everything after it as an FQDN, even what would parse as an address.
    assert_eq!(id("@192.0.2.1").id_type, IdType::FQDN);
    assert_eq!(id("@192.0.2.1").data, b"192.0.2.1");
    assert_eq!(
        id("@#0123abCD"),
        Identity {
            id_type: IdType::KEY_ID,
            data: vec![0x01, 0x23, 0xab, 0xcd]
        }
    );
    assert_eq!(id("@@alice").id_type, IdType::RFC822_ADDR);
    assert_eq!(id("fqdn:a@b").id_type, IdType::FQDN);
    assert_eq!(id("email:alice").id_type, IdType::RFC822_ADDR);
    assert_eq!(id("ipv4:10.0.0.1"), id("10.0.0.1"));
    assert_eq!(id("keyid:#00ff").data, vec![0, 0xff]);
    assert_eq!(id("  gw.example  "), id("gw.example"));

    assert_eq!(Identity::parse(""), Err(IdentityError::Empty));
    assert!(matches!(
        Identity::parse("%any"),
        Err(IdentityError::Wildcard(_))
    ));
    assert!(matches!(
        Identity::parse("@#abc"),
        Err(IdentityError::InvalidHex(_))
    ));
    assert!(matches!(
        Identity::parse("@#zz"),
        Err(IdentityError::InvalidHex(_))
    ));
    assert!(matches!(
        Identity::parse("ipv4:1.2.3"),
        Err(IdentityError::InvalidAddress(_))
    ));
}

/// DER of `C=CH, O=strongSwan, CN=moon` as `openssl req -subj /C=CH/O=strongSwan/CN=moon`
/// encodes it (C PrintableString, the others UTF8String).
const MOON_DN: &[u8] = &[
    0x30, 0x35, 0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x06, 0x13, 0x02, 0x43, 0x48, 0x31,
    0x13, 0x30, 0x11, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x0c, 0x0a, 0x73, 0x74, 0x72, 0x6f, 0x6e, 0x67,
    0x53, 0x77, 0x61, 0x6e, 0x31, 0x11, 0x30, 0x0f, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x08, 0x6d,
    0x6f, 0x6f, 0x6e, 0x2e, 0x63, 0x6f, 0x6d,
];

#[test]
fn dn_is_encoded_in_the_order_written() {
    let d = id("C=CH, O=strongSwan, CN=moon.com");
    assert_eq!(d.id_type, IdType::DER_ASN1_DN);
    assert_eq!(d.data, MOON_DN, "{:02x?}", d.data);
    assert_eq!(d.to_string(), "C=CH, O=strongSwan, CN=moon.com");
    // Other spellings of the same DN give the same DER.
    assert_eq!(id("C=CH,O=strongSwan,CN=moon.com"), d);
    assert_eq!(id("c = CH , o=strongSwan, commonName=moon.com"), d);
    assert_eq!(id("/C=CH/O=strongSwan/CN=moon.com"), d);
    assert_eq!(id("asn1dn:C=CH, O=strongSwan, CN=moon.com"), d);
    let hex: String = MOON_DN.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(id(&format!("asn1dn:#{hex}")), d);

    // Escapes, multi-valued RDNs and e-mail.
    let e = id(r"C=CH, O=Acme\, Inc., OU=VPN+OU=Ops, E=alice@example.com");
    assert_eq!(e.id_type, IdType::DER_ASN1_DN);
    let text = e.to_string();
    assert!(text.starts_with(r"C=CH, O=Acme\, Inc., "), "{text}");
    assert_eq!(id(&text), e, "Display parses back: {text}");

    assert!(matches!(
        Identity::parse("C=CH, , CN=x"),
        Err(IdentityError::InvalidDn { .. })
    ));
    let err = Identity::parse("C=CH, XYZ=1").unwrap_err();
    assert!(err.to_string().contains("XYZ"), "{err}");
}

#[test]
fn dn_comparison_ignores_string_type_case_and_spacing() {
    // The same DN with PrintableString everywhere (as many CAs encode it).
    let printable: Vec<u8> = MOON_DN
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if b == 0x0c && (i == 24 || i == 45) {
                0x13
            } else {
                b
            }
        })
        .collect();
    assert_ne!(printable, MOON_DN);
    assert!(dn_equal(&printable, MOON_DN));
    let configured = id("C=CH, O=STRONGSWAN,  CN=Moon.com");
    let from_cert = Identity {
        id_type: IdType::DER_ASN1_DN,
        data: printable,
    };
    assert!(configured.same_as(&from_cert));
    assert!(IdentityPattern::Exact(configured).matches(&from_cert));
    // Order matters: it is a different DN.
    assert!(!dn_equal(
        &id("CN=moon.com, O=strongSwan, C=CH").data,
        MOON_DN
    ));
    assert!(!dn_equal(
        &id("C=CH, O=strongSwan, CN=sun.com").data,
        MOON_DN
    ));
    assert!(!dn_equal(b"not der", MOON_DN));
}

#[test]
fn display_round_trips() {
    for s in [
        "192.0.2.1",
        "2001:db8::1",
        "user@example.com",
        "gw.example",
        "@#0123abcd",
        "C=CH, O=strongSwan, CN=moon.com",
    ] {
        assert_eq!(id(s).to_string(), s);
        assert_eq!(id(&id(s).to_string()), id(s));
    }
    // Where the plain text would parse as another type, the prefix is kept.
    assert_eq!(id("@192.0.2.1").to_string(), "@192.0.2.1");
    assert_eq!(id("@@alice").to_string(), "@@alice");
    assert_eq!(id("@a=b").to_string(), "@a=b");
    for s in ["@192.0.2.1", "@@alice", "@a=b"] {
        assert_eq!(id(&id(s).to_string()), id(s));
    }
    let odd = Identity {
        id_type: IdType::NULL,
        data: vec![1, 2],
    };
    assert_eq!(odd.to_string(), "ID_NULL:#0102");
    let payload = id("gw.example").to_payload();
    assert_eq!(Identity::from_payload(&payload), id("gw.example"));
}

#[test]
fn patterns_match_by_type_and_glob() {
    assert_eq!(IdentityPattern::parse("*").unwrap(), IdentityPattern::Any);
    assert_eq!(
        IdentityPattern::parse("%any").unwrap(),
        IdentityPattern::Any
    );
    assert!(IdentityPattern::Any.matches(&id("anything.example")));

    let exact = IdentityPattern::parse("client.example").unwrap();
    assert!(exact.matches(&id("client.example")));
    assert!(
        exact.matches(&id("CLIENT.Example")),
        "FQDNs compare without case"
    );
    assert!(!exact.matches(&id("other.example")));
    assert!(!exact.matches(&id("client.example@x")));

    let mail = IdentityPattern::parse("*@example.com").unwrap();
    assert!(mail.matches(&id("alice@example.com")));
    assert!(mail.matches(&id("Bob@EXAMPLE.com")));
    assert!(!mail.matches(&id("alice@example.org")));
    assert!(
        !mail.matches(&id("@alice@example.com")),
        "an FQDN is not an e-mail address"
    );

    let fqdn = IdentityPattern::parse("*.vpn.example").unwrap();
    assert!(fqdn.matches(&id("a.vpn.example")));
    assert!(fqdn.matches(&id("a.b.vpn.example")));
    assert!(!fqdn.matches(&id("vpn.example")));
    assert!(!fqdn.matches(&id("x@a.vpn.example")));

    let dn = IdentityPattern::parse("C=CH,O=strongSwan,CN=*").unwrap();
    assert_eq!(dn.to_string(), "C=CH, O=strongSwan, CN=*");
    let moon = Identity {
        id_type: IdType::DER_ASN1_DN,
        data: MOON_DN.to_vec(),
    };
    assert!(dn.matches(&moon));
    assert!(!dn.matches(&id("C=DE, O=strongSwan, CN=moon.com")));
    assert!(!dn.matches(&id("moon.com")));

    let ip = IdentityPattern::parse("10.8.0.1").unwrap();
    assert!(ip.matches(&id("10.8.0.1")));
    assert!(!ip.matches(&id("10.8.0.2")));
    assert!(IdentityPattern::parse("").is_err());

    let net = IdentityPattern::parse("10.8.0.*").unwrap();
    assert!(net.matches(&id("10.8.0.77")));
    assert!(!net.matches(&id("10.8.1.77")));
    assert!(!net.matches(&id("2001:db8::1")));
    assert!(
        IdentityPattern::parse("2001:db8::*")
            .unwrap()
            .matches(&id("2001:db8::1"))
    );
    // An FQDN identity that happens to look like an address still matches as an FQDN.
    assert!(net.matches(&id("@10.8.0.5")));
}

#[test]
fn glob_edge_cases() {
    assert!(glob_match(b"*", b""));
    assert!(glob_match(b"a*b*c", b"aXXbYYc"));
    assert!(glob_match(b"a*b*c", b"abc"));
    assert!(!glob_match(b"a*b*c", b"acb"));
    assert!(glob_match(b"**x", b"yyx"));
    assert!(!glob_match(b"x", b""));
    assert!(!glob_match(b"", b"x"));
    // Pathological pattern stays fast (no exponential backtracking).
    let text = vec![b'a'; 10_000];
    let mut pat = b"*a".repeat(50);
    pat.push(b'b');
    assert!(!glob_match(&pat, &text));
}
