//! Operator views of SAs (`ikectl list-sas`, `show`).

use std::time::Instant;

use crate::endpoint::{ChildSaInfo, IkeSaInfo};
use crate::policy::ts::ts_to_string;
use crate::sa::{ChildSa, IkeSa};

fn child_info(c: &ChildSa) -> ChildSaInfo {
    ChildSaInfo {
        name: c.name.clone(),
        spi_in: c.spi_in,
        spi_out: c.spi_out,
        local_ts: c.local_ts.iter().map(ts_to_string).collect(),
        remote_ts: c.remote_ts.iter().map(ts_to_string).collect(),
        state: c.state.as_str(),
        proposal: format!("{:?}", c.suite),
    }
}

/// The operator view of `sa`.
pub fn ike_sa_info(sa: &IkeSa, now: Instant) -> IkeSaInfo {
    IkeSaInfo {
        id: sa.id(),
        connection: sa.connection.clone(),
        state: sa.state.as_str(),
        local_id: sa
            .local_id
            .as_ref()
            .map(|i| i.to_string())
            .unwrap_or_default(),
        remote_id: sa
            .remote_id
            .as_ref()
            .map(|i| i.to_string())
            .unwrap_or_default(),
        local_addr: sa.local_addr,
        remote_addr: sa.remote_addr,
        spi_i: sa.spis.spi_i.to_string(),
        spi_r: sa.spis.spi_r.to_string(),
        proposal: format!("{:?}", sa.suite),
        virtual_ip: sa.virtual_ip,
        nat_remote: sa.nat_remote,
        established_secs: sa
            .established_at
            .map(|t| now.saturating_duration_since(t).as_secs()),
        mid_sync: sa.mid_sync,
        children: sa.children.iter().map(child_info).collect(),
    }
}
