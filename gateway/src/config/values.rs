//! Parsers for the small value syntaxes of the configuration file: durations (`"100ms"`,
//! `"4h"`), subnets (`"10.1.0.0/24"`), traffic selectors and pool ranges.

use std::net::IpAddr;
use std::time::Duration;

use ike::config::{PoolConfig, TsConfig};

/// Parses `"100ms"`, `"30s"`, `"5m"`, `"4h"`, `"1d"`, or a sum such as `"1h30m"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration; write e.g. \"30s\", \"100ms\" or \"4h\"".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "invalid duration \"{s}\": expected a number before the unit"
            ));
        }
        let (num, tail) = rest.split_at(digits);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("invalid duration \"{s}\": number too large"))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let unit_secs: Option<u64> = match unit.trim() {
            "ms" => None,
            "s" => Some(1),
            "m" => Some(60),
            "h" => Some(3600),
            "d" => Some(86_400),
            "" => {
                return Err(format!(
                    "invalid duration \"{s}\": missing unit (ms, s, m, h or d)"
                ));
            }
            other => {
                return Err(format!(
                    "invalid duration \"{s}\": unknown unit \"{other}\" (use ms, s, m, h or d)"
                ));
            }
        };
        let part = match unit_secs {
            None => Duration::from_millis(n),
            Some(k) => Duration::from_secs(
                n.checked_mul(k)
                    .ok_or_else(|| format!("invalid duration \"{s}\": too large"))?,
            ),
        };
        total = total
            .checked_add(part)
            .ok_or_else(|| format!("invalid duration \"{s}\": too large"))?;
        rest = next;
    }
    Ok(total)
}

/// Parses `ADDR/LEN` (or a bare address, meaning a host prefix). Host bits must be clear.
pub fn parse_subnet(s: &str) -> Result<(IpAddr, u8), String> {
    let s = s.trim();
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("\"{s}\" is not an IP address or subnet (write e.g. 10.1.0.0/24)"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) => l
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("\"{s}\": prefix length must be 0..={max}"))?,
    };
    let network = mask(addr, len);
    if network != addr {
        return Err(format!(
            "\"{s}\" has host bits set; did you mean {network}/{len}?"
        ));
    }
    Ok((addr, len))
}

/// The network address of `addr/len`.
fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

/// Parses a traffic selector: `dynamic`, or a subnet, optionally followed by
/// `[PROTO]` or `[PROTO/PORT]` / `[PROTO/LO-HI]` (PROTO a number or tcp/udp/icmp).
pub fn parse_ts(s: &str) -> Result<TsConfig, String> {
    let s = s.trim();
    if s == "dynamic" {
        return Ok(TsConfig::Dynamic);
    }
    let (net, restriction) = match s.split_once('[') {
        Some((n, r)) => {
            let r = r
                .strip_suffix(']')
                .ok_or_else(|| format!("\"{s}\": missing ']' after the protocol/port"))?;
            (n, Some(r))
        }
        None => (s, None),
    };
    let (addr, prefix_len) = parse_subnet(net)?;
    let (ip_protocol, ports) = match restriction {
        None => (0, (0, 65535)),
        Some(r) => {
            let (proto, port) = match r.split_once('/') {
                Some((p, port)) => (p, Some(port)),
                None => (r, None),
            };
            let proto = match proto {
                "tcp" => 6,
                "udp" => 17,
                "icmp" => 1,
                "ipv6-icmp" | "icmp6" => 58,
                "any" | "" => 0,
                n => n
                    .parse::<u8>()
                    .map_err(|_| format!("\"{s}\": unknown protocol \"{n}\""))?,
            };
            let ports = match port {
                None => (0, 65535),
                Some(p) => {
                    let bad = || format!("\"{s}\": invalid port \"{p}\"");
                    match p.split_once('-') {
                        Some((lo, hi)) => {
                            let lo = lo.parse::<u16>().map_err(|_| bad())?;
                            let hi = hi.parse::<u16>().map_err(|_| bad())?;
                            if lo > hi {
                                return Err(bad());
                            }
                            (lo, hi)
                        }
                        None => {
                            let p = p.parse::<u16>().map_err(|_| bad())?;
                            (p, p)
                        }
                    }
                }
            };
            (proto, ports)
        }
    };
    Ok(TsConfig::Subnet {
        addr,
        prefix_len,
        ip_protocol,
        ports,
    })
}

/// Parses a pool: a subnet (`10.8.0.0/24`: hands out .1 to .254; the network and
/// broadcast addresses are never leased) or a range `FIRST-LAST`.
pub fn parse_pool(name: &str, s: &str, dns: Vec<IpAddr>) -> Result<PoolConfig, String> {
    let s = s.trim();
    if let Some((first, last)) = s.split_once('-') {
        let first: IpAddr = first
            .trim()
            .parse()
            .map_err(|_| format!("\"{first}\" is not an IP address"))?;
        let last: IpAddr = last
            .trim()
            .parse()
            .map_err(|_| format!("\"{last}\" is not an IP address"))?;
        if first.is_ipv4() != last.is_ipv4() {
            return Err(format!(
                "\"{s}\": both ends of a range must be the same family"
            ));
        }
        if ip_to_u128(first) > ip_to_u128(last) {
            return Err(format!("\"{s}\": the first address is after the last"));
        }
        let prefix_len = if first.is_ipv4() { 32 } else { 128 };
        return Ok(PoolConfig {
            name: name.to_owned(),
            first,
            last,
            prefix_len,
            dns,
        });
    }
    let (net, len) = parse_subnet(s)?;
    let bits: u8 = if net.is_ipv4() { 32 } else { 128 };
    let host_bits = u32::from(bits - len);
    let size: u128 = 1u128.checked_shl(host_bits).unwrap_or(u128::MAX);
    let base = ip_to_u128(net);
    let (first, last) = if host_bits >= 2 {
        (base + 1, base + (size - 2))
    } else {
        (base, base + (size - 1))
    };
    Ok(PoolConfig {
        name: name.to_owned(),
        first: u128_to_ip(first, net.is_ipv4()),
        last: u128_to_ip(last, net.is_ipv4()),
        prefix_len: len,
        dns,
    })
}

fn ip_to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn u128_to_ip(v: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(u32::try_from(v).unwrap_or(u32::MAX).into())
    } else {
        IpAddr::V6(v.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("4h"), Ok(Duration::from_secs(4 * 3600)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("4").unwrap_err().contains("missing unit"));
        assert!(
            parse_duration("4w")
                .unwrap_err()
                .contains("unknown unit \"w\"")
        );
        assert!(
            parse_duration("h")
                .unwrap_err()
                .contains("expected a number")
        );
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn subnets_and_selectors() {
        assert_eq!(
            parse_subnet("10.1.0.0/24"),
            Ok(("10.1.0.0".parse().unwrap(), 24))
        );
        assert_eq!(parse_subnet("::1"), Ok(("::1".parse().unwrap(), 128)));
        assert!(
            parse_subnet("10.1.0.1/24")
                .unwrap_err()
                .contains("did you mean 10.1.0.0/24")
        );
        assert!(parse_subnet("10.1.0.0/33").unwrap_err().contains("0..=32"));
        assert_eq!(parse_ts("dynamic"), Ok(TsConfig::Dynamic));
        assert_eq!(
            parse_ts("10.0.0.0/8[tcp/443]"),
            Ok(TsConfig::Subnet {
                addr: "10.0.0.0".parse().unwrap(),
                prefix_len: 8,
                ip_protocol: 6,
                ports: (443, 443)
            })
        );
    }

    #[test]
    fn pools() {
        let p = parse_pool("vpn", "10.8.0.0/24", vec![]).unwrap();
        assert_eq!(
            (p.first.to_string(), p.last.to_string()),
            ("10.8.0.1".into(), "10.8.0.254".into())
        );
        assert_eq!(p.prefix_len, 24);
        let r = parse_pool("r", "10.9.0.10-10.9.0.20", vec![]).unwrap();
        assert_eq!(r.last.to_string(), "10.9.0.20");
        assert!(parse_pool("r", "10.9.0.20-10.9.0.10", vec![]).is_err());
    }
}
