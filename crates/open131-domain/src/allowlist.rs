//! Source-IP allowlists: the bank accepts a partner's requests only from the
//! addresses the partner registered. `*` allows every address.

use std::net::IpAddr;

/// Most networks in one allowlist.
pub const ALLOWLIST_NETWORKS_MAX: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpAllowlist {
    Any,
    Networks(Vec<(IpAddr, u8)>),
}

/// Why an allowlist was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowlistError {
    #[error("{0:?} is not an IP address or network")]
    NotAnAddress(String),
    #[error("{0:?}: bad prefix length")]
    BadPrefix(String),
    #[error("an allowlist is `*` or at least one address")]
    Empty,
    #[error("at most {ALLOWLIST_NETWORKS_MAX} networks")]
    TooMany,
}

impl IpAllowlist {
    /// Parses `*` or a comma-separated list of addresses and CIDR networks
    /// (`127.0.0.1, 10.0.0.0/8, ::1`).
    pub fn parse(text: &str) -> Result<Self, AllowlistError> {
        let Some(items) = crate::settings::list_items(text) else { return Ok(Self::Any) };
        let mut networks = Vec::new();
        for item in items {
            let (addr, bits) = match item.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (item, None),
            };
            let addr: IpAddr = addr.parse().map_err(|_| AllowlistError::NotAnAddress(item.to_string()))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                None => max,
                Some(b) => b
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| AllowlistError::BadPrefix(item.to_string()))?,
            };
            // Peers are compared as IPv4 when they are IPv4-mapped, so entries are too.
            let (addr, bits) = match addr {
                IpAddr::V6(v6) if bits >= 96 => {
                    v6.to_ipv4_mapped().map_or((addr, bits), |v4| (IpAddr::V4(v4), bits - 96))
                }
                _ => (addr, bits),
            };
            networks.push((addr, bits));
        }
        if networks.is_empty() {
            return Err(AllowlistError::Empty);
        }
        if networks.len() > ALLOWLIST_NETWORKS_MAX {
            return Err(AllowlistError::TooMany);
        }
        Ok(Self::Networks(networks))
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            // An IPv4 peer seen on an IPv6 socket.
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        match self {
            Self::Any => true,
            Self::Networks(nets) => nets.iter().any(|(net, bits)| in_network(ip, *net, *bits)),
        }
    }
}

impl std::fmt::Display for IpAllowlist {
    /// The form [`IpAllowlist::parse`] reads back, except for the empty list
    /// (a stored list that no longer parses), which allows nobody and prints nothing.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Networks(nets) => {
                crate::settings::write_list(f, nets.iter().map(|(net, bits)| format!("{net}/{bits}")))
            }
        }
    }
}

fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - u32::from(bits)) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - u32::from(bits)) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_and_errors() {
        let list = IpAllowlist::parse("127.0.0.1, 10.0.0.0/8, 2001:db8::/32").unwrap();
        let mapped = IpAllowlist::parse("::ffff:127.0.0.1, ::ffff:10.0.0.0/104").unwrap();
        assert!(mapped.allows("127.0.0.1".parse().unwrap()) && mapped.allows("10.1.2.3".parse().unwrap()));
        let mapped = IpAllowlist::parse("::ffff:127.0.0.1, ::ffff:10.0.0.0/104").unwrap();
        assert!(mapped.allows("127.0.0.1".parse().unwrap()) && mapped.allows("10.1.2.3".parse().unwrap()));
        for ok in ["127.0.0.1", "10.200.3.4", "2001:db8::1", "::ffff:10.0.0.1"] {
            assert!(list.allows(ok.parse().unwrap()), "{ok}");
        }
        for no in ["127.0.0.2", "11.0.0.1", "2001:db9::1", "::1"] {
            assert!(!list.allows(no.parse().unwrap()), "{no}");
        }
        assert!(IpAllowlist::parse("*").unwrap().allows("8.8.8.8".parse().unwrap()));
        for text in ["*", "127.0.0.1, 10.0.0.0/8, 2001:db8::/32"] {
            let list = IpAllowlist::parse(text).unwrap();
            assert_eq!(IpAllowlist::parse(&list.to_string()).unwrap(), list, "{text}");
        }
        assert!(IpAllowlist::parse("0.0.0.0/0").unwrap().allows("8.8.8.8".parse().unwrap()));
        for bad in ["", "localhost", "10.0.0.0/33", "1.2.3.4/x"] {
            assert!(IpAllowlist::parse(bad).is_err(), "{bad}");
        }
    }
}
