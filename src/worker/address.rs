//! Which addresses a worker may fetch a requester's inputs from: public unicast addresses only.
//!
//! A request's input URLs and a dataset's multiaddr are written by strangers, and the worker fetches them from
//! inside the pool operator's network. Without this rule a requester could make the worker read the pool's own
//! API on loopback, a database on a private network, or a cloud metadata service (169.254.169.254, which hands
//! out credentials), and receive the answer in the task's public result. So every address a fetch would connect
//! to, after DNS resolution and after each redirect, must be [`is_public`]; the operator names the internal
//! hosts it trusts explicitly (`--allow-input-host`).
//!
//! The ranges refused are those of IANA's special-purpose registries (RFC 6890 and its updates) that are not
//! globally reachable, plus multicast and broadcast. IPv6 forms that carry an IPv4 address (mapped, compatible,
//! NAT64) are judged by that address; 6to4 and Teredo tunnels, which reach IPv4 through a relay, are refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `ip` is a public unicast address that a fetch may connect to.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

/// IPv4 blocks that are not public unicast: (network, prefix length, what it is).
const V4_REFUSED: &[([u8; 4], u8, &str)] = &[
    ([0, 0, 0, 0], 8, "this network (0.0.0.0/8, the unspecified address included)"),
    ([10, 0, 0, 0], 8, "private (RFC 1918)"),
    ([100, 64, 0, 0], 10, "shared address space (CGNAT, RFC 6598)"),
    ([127, 0, 0, 0], 8, "loopback"),
    ([169, 254, 0, 0], 16, "link-local (cloud metadata services among them)"),
    ([172, 16, 0, 0], 12, "private (RFC 1918)"),
    ([192, 0, 0, 0], 24, "IETF protocol assignments"),
    ([192, 0, 2, 0], 24, "documentation (TEST-NET-1)"),
    ([192, 88, 99, 0], 24, "6to4 relay anycast"),
    ([192, 168, 0, 0], 16, "private (RFC 1918)"),
    ([198, 18, 0, 0], 15, "benchmarking"),
    ([198, 51, 100, 0], 24, "documentation (TEST-NET-2)"),
    ([203, 0, 113, 0], 24, "documentation (TEST-NET-3)"),
    ([224, 0, 0, 0], 4, "multicast"),
    ([240, 0, 0, 0], 4, "reserved (broadcast 255.255.255.255 included)"),
];

fn in_v4(ip: Ipv4Addr, net: [u8; 4], len: u8) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    !V4_REFUSED.iter().any(|(net, len, _)| in_v4(ip, *net, *len))
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], len: u8) -> bool {
    let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) };
    u128::from(ip) & mask == u128::from(Ipv6Addr::from(net)) & mask
}

/// The IPv4 address in the low 32 bits.
fn low_v4(ip: Ipv6Addr) -> Ipv4Addr {
    Ipv4Addr::from((u128::from(ip) & 0xffff_ffff) as u32)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    // IPv4-mapped (::ffff:a.b.c.d): a dual-stack socket connects to the IPv4 address itself.
    if in_v6(ip, [0, 0, 0, 0, 0, 0xffff, 0, 0], 96) {
        return is_public_v4(low_v4(ip));
    }
    // NAT64's well-known prefix (64:ff9b::/96, RFC 6052): a DNS64 resolver answers it for IPv4-only hosts, and
    // the translator connects to the embedded address.
    if in_v6(ip, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96) {
        return is_public_v4(low_v4(ip));
    }
    // Only global unicast (2000::/3) is public. That leaves out ::/128, ::1, IPv4-compatible ::a.b.c.d
    // (deprecated), 100::/64 (discard), 64:ff9b:1::/48 (local NAT64), fc00::/7 (unique local), fe80::/10
    // (link-local), fec0::/10 (site-local), ff00::/8 (multicast) and every unassigned block.
    if !in_v6(ip, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3) {
        return false;
    }
    const REFUSED: &[([u16; 8], u8)] = &[
        // IETF protocol assignments, Teredo (2001::/32) and ORCHID among them.
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),
        // Documentation.
        ([0x2001, 0x0db8, 0, 0, 0, 0, 0, 0], 32),
        // 6to4: reaches an embedded IPv4 address through a relay.
        ([0x2002, 0, 0, 0, 0, 0, 0, 0], 16),
        // Documentation (RFC 9637).
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),
    ];
    !REFUSED.iter().any(|(net, len)| in_v6(ip, *net, *len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> bool {
        is_public(s.parse().expect("an address"))
    }

    #[test]
    fn every_refused_ipv4_block_is_refused_at_both_ends_and_its_neighbours_are_not() {
        for (net, len, what) in V4_REFUSED {
            let first = u32::from(Ipv4Addr::from(*net));
            let last = first | (u32::MAX >> u32::from(*len));
            for ip in [first, first + 1, (first / 2) + (last / 2), last] {
                assert!(!is_public_v4(Ipv4Addr::from(ip)), "{} ({what})", Ipv4Addr::from(ip));
            }
            // Just outside the block, unless that is in another refused block.
            for ip in [first.checked_sub(1), last.checked_add(1)].into_iter().flatten() {
                let outside = Ipv4Addr::from(ip);
                let other = V4_REFUSED.iter().any(|(n, l, _)| in_v4(outside, *n, *l));
                assert_eq!(is_public_v4(outside), !other, "{outside} next to {what}");
            }
        }
    }

    #[test]
    fn ipv4_examples() {
        for refused in [
            "127.0.0.1",
            "127.255.255.254",
            "0.0.0.0",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.169.254",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!v4(refused), "{refused}");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "198.20.0.0",
            "223.255.255.255",
        ] {
            assert!(v4(public), "{public}");
        }
    }

    #[test]
    fn ipv6_examples() {
        for refused in [
            "::",
            "::1",
            "fe80::1",
            "febf:ffff::1",
            "fec0::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "ff0e::1",
            "100::1",
            "64:ff9b:1::1",
            "2001::1",
            "2001:0:4136:e378::1",
            "2001:1ff::1",
            "2001:db8::1",
            "2002:7f00:1::1",
            "2002:0808:0808::1",
            "3fff::1",
            "3fff:fff::1",
            "4000::1",
            "5f00::1",
            "::0.0.0.2",
        ] {
            assert!(!v4(refused), "{refused}");
        }
        for public in ["2606:4700:4700::1111", "2a00:1450:4007:80e::200e", "2001:200::1", "3fff:1000::1"] {
            assert!(v4(public), "{public}");
        }
    }

    #[test]
    fn ipv6_forms_of_ipv4_are_judged_by_their_ipv4_address() {
        for (inner, public) in [
            ("127.0.0.1", false),
            ("10.1.2.3", false),
            ("169.254.169.254", false),
            ("192.168.0.1", false),
            ("100.64.0.1", false),
            ("0.0.0.0", false),
            ("255.255.255.255", false),
            ("224.0.0.1", false),
            ("8.8.8.8", true),
            ("1.1.1.1", true),
        ] {
            assert_eq!(v4(&format!("::ffff:{inner}")), public, "mapped {inner}");
            assert_eq!(v4(&format!("64:ff9b::{inner}")), public, "NAT64 {inner}");
            // IPv4-compatible (deprecated): refused whatever it embeds.
            assert!(!v4(&format!("::{inner}")), "compatible {inner}");
        }
        // The mapped form as the standard library prints it is the same address.
        let mapped: Ipv6Addr = "::ffff:7f00:1".parse().expect("v6");
        assert!(!is_public(IpAddr::V6(mapped)));
        assert_eq!(mapped.to_ipv4_mapped(), Some(Ipv4Addr::LOCALHOST));
    }
}
