//! Assertions shared by every responder test: the initiator's and the responder's view
//! of one tunnel must agree. They return errors (with both views) instead of panicking,
//! so a test decides how to fail.
//!
//! State names are compared case-insensitively with charon's (`ESTABLISHED` for an IKE
//! SA, `INSTALLED` for a Child SA); batond's `ikectl --json` is expected to use the same
//! words.

use crate::Error;
use crate::vici::{ChildSaInfo, IkeSaInfo};

/// The single IKE SA in `sas`, or an error listing what is there.
pub fn only_ike_sa(sas: &[IkeSaInfo]) -> Result<&IkeSaInfo, Error> {
    match sas {
        [one] => Ok(one),
        _ => Err(Error::new(format!(
            "expected exactly one IKE SA, found {}: {sas:#?}",
            sas.len()
        ))),
    }
}

/// The Child SAs of `sa` that are installed (rekeyed ones may linger in other states).
pub fn installed_children(sa: &IkeSaInfo) -> Vec<&ChildSaInfo> {
    sa.children
        .iter()
        .filter(|c| c.state.eq_ignore_ascii_case("INSTALLED"))
        .collect()
}

/// Checks that `initiator` and `responder` describe the same established tunnel: both
/// ESTABLISHED, same IKE SPIs (RFC 7296 §3.1), identities crossed, exactly one installed
/// Child SA on each side whose inbound SPI is the other side's outbound SPI (§2.17: each
/// end picks the SPI it receives with).
pub fn views_agree(initiator: &IkeSaInfo, responder: &IkeSaInfo) -> Result<(), Error> {
    let fail = |what: &str| {
        Err(Error::new(format!(
            "{what}\ninitiator: {initiator:#?}\nresponder: {responder:#?}"
        )))
    };
    if !initiator.state.eq_ignore_ascii_case("ESTABLISHED")
        || !responder.state.eq_ignore_ascii_case("ESTABLISHED")
    {
        return fail("IKE SA not ESTABLISHED on both sides");
    }
    if !initiator
        .initiator_spi
        .eq_ignore_ascii_case(&responder.initiator_spi)
        || !initiator
            .responder_spi
            .eq_ignore_ascii_case(&responder.responder_spi)
    {
        return fail("IKE SPIs differ");
    }
    if initiator.local_id != responder.remote_id || initiator.remote_id != responder.local_id {
        return fail("identities are not crossed");
    }
    let (i, r) = (installed_children(initiator), installed_children(responder));
    let (Some(ic), Some(rc)) = (i.first(), r.first()) else {
        return fail("no installed Child SA");
    };
    if i.len() != 1 || r.len() != 1 {
        return fail("more than one installed Child SA");
    }
    if !ic.spi_in.eq_ignore_ascii_case(&rc.spi_out) || !ic.spi_out.eq_ignore_ascii_case(&rc.spi_in)
    {
        return fail("Child SA SPIs are not crossed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vici::Section;

    fn sa(local: &str, remote: &str, spi_in: &str, spi_out: &str) -> IkeSaInfo {
        IkeSaInfo {
            name: "c".into(),
            uniqueid: "1".into(),
            state: "ESTABLISHED".into(),
            local_host: String::new(),
            local_port: String::new(),
            remote_host: String::new(),
            remote_port: String::new(),
            local_id: local.into(),
            remote_id: remote.into(),
            initiator_spi: "00000000000000aa".into(),
            responder_spi: "00000000000000bb".into(),
            initiator: false,
            nat_local: false,
            nat_remote: false,
            local_vips: vec![],
            remote_vips: vec![],
            children: vec![ChildSaInfo {
                name: "net".into(),
                uniqueid: "1".into(),
                state: "INSTALLED".into(),
                spi_in: spi_in.into(),
                spi_out: spi_out.into(),
                encr_alg: None,
                local_ts: vec![],
                remote_ts: vec![],
            }],
            raw: Section::default(),
        }
    }

    #[test]
    fn agreeing_views_pass_and_each_mismatch_fails() {
        let i = sa("client.example", "gw.example", "c0000001", "c0000002");
        let r = sa("gw.example", "client.example", "c0000002", "c0000001");
        assert!(views_agree(&i, &r).is_ok());
        let mut bad = r.clone();
        bad.children[0].spi_in = "c0000009".into();
        assert!(views_agree(&i, &bad).is_err());
        let mut bad = r.clone();
        bad.responder_spi = "00000000000000cc".into();
        assert!(views_agree(&i, &bad).is_err());
        let mut bad = r.clone();
        bad.remote_id = "other.example".into();
        assert!(views_agree(&i, &bad).is_err());
        let mut bad = r.clone();
        bad.state = "CONNECTING".into();
        assert!(views_agree(&i, &bad).is_err());
        let mut bad = r;
        bad.children[0].state = "REKEYED".into();
        assert!(views_agree(&i, &bad).is_err());
        assert!(only_ike_sa(&[]).is_err());
    }
}
