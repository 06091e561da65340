//! Name resolution for the sandbox: every address an allowed host name
//! resolves to is checked before the client connects, and the client connects
//! to exactly the addresses checked (ureq hands the resolver's answer to the
//! connector; nothing resolves the name a second time), so a name that
//! rebinds to `169.254.169.254` or a private network is refused.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// Looks a host name up; the system's resolver, or a fake in tests.
pub trait Lookup: Send + Sync + 'static {
    /// The addresses of `host` (a name, never an IP literal) at `port`.
    fn lookup(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>>;
}

/// The system's resolver (`getaddrinfo`).
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        Ok((host, port).to_socket_addrs()?.collect())
    }
}

/// Which resolved addresses a request may connect to.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    /// Addresses the config names literally (`base_url`, `allowed_hosts`):
    /// a URL whose host is one of them may reach it. A host *name* that
    /// resolves to one gets no such pass.
    pub named: HashSet<IpAddr>,
    /// `http.allow_private_networks`: every address is allowed.
    pub allow_private_networks: bool,
    /// The configured proxy's `host:port`: the config names it, so its
    /// addresses are not checked (the proxy resolves the targets).
    pub proxy: Option<String>,
}

/// Whether `ip` is outside the public internet: loopback, private,
/// shared (CGNAT), link-local (the cloud metadata service), unique-local,
/// unspecified, broadcast or multicast, also as an IPv4-mapped IPv6 address.
pub fn is_non_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared (CGNAT) 100.64.0.0/10
                || (a == 192 && b == 0 && c == 0) // IETF protocol assignments 192.0.0.0/24 (Oracle's metadata 192.0.0.192)
                || (a == 198 && (b & 0xfe) == 18) // benchmarking 198.18.0.0/15
                || a >= 240 // reserved 240.0.0.0/4
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_non_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            let embedded = |hi: u16, lo: u16| {
                Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)
            };
            // Addresses that carry an IPv4 address, which a translator or
            // tunnel may deliver to: judged by that address.
            let carried = if s[..6] == [0; 6] && !(s[6] == 0 && s[7] <= 1) {
                // IPv4-compatible ::a.b.c.d (deprecated), not :: or ::1.
                Some(embedded(s[6], s[7]))
            } else if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                // NAT64 well-known prefix 64:ff9b::/96.
                Some(embedded(s[6], s[7]))
            } else if s[0] == 0x2002 {
                // 6to4 2002:a.b.c.d::/48.
                Some(embedded(s[1], s[2]))
            } else {
                None
            };
            if let Some(v4) = carried
                && is_non_public(IpAddr::V4(v4))
            {
                return true;
            }
            let first = s[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link local fe80::/10
                || (first & 0xffc0) == 0xfec0 // site local fec0::/10 (deprecated)
                || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64 64:ff9b:1::/48
        }
    }
}

impl AddressPolicy {
    /// Whether a connection to `ip` is allowed; `literal` if the URL named
    /// the address itself rather than a name that resolved to it.
    pub fn permits(&self, ip: IpAddr, literal: bool) -> bool {
        self.allow_private_networks || !is_non_public(ip) || (literal && self.named.contains(&ip))
    }
}

/// Why a host's addresses were refused; carried inside ureq's error so the
/// client can report it as `denied`.
#[derive(Debug)]
pub struct AddressRefused(pub String);

impl fmt::Display for AddressRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AddressRefused {}

/// How long a name's looked-up addresses are used again. ureq resolves
/// before it looks for a pooled connection, so without this every request
/// would look the name up again (and start a thread to time the lookup out).
/// The addresses are checked against the policy on every use.
pub const LOOKUP_REUSE: Duration = Duration::from_secs(30);

/// Names looked up lately: (host, port) to when, and what was found.
type LookupCache = Mutex<HashMap<(String, u16), (Instant, Vec<SocketAddr>)>>;

/// ureq's resolver, with the sandbox's address check.
pub struct SandboxResolver {
    lookup: Arc<dyn Lookup>,
    policy: AddressPolicy,
    recent: Arc<LookupCache>,
}

impl fmt::Debug for SandboxResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxResolver")
            .field("policy", &self.policy)
            .finish()
    }
}

impl SandboxResolver {
    /// Resolves with `lookup`, then keeps only the addresses `policy` permits.
    pub fn new(lookup: Arc<dyn Lookup>, policy: AddressPolicy) -> SandboxResolver {
        SandboxResolver {
            lookup,
            policy,
            recent: Arc::default(),
        }
    }

    /// What a lookup of `host` found within [`LOOKUP_REUSE`], if any.
    fn recently(&self, host: &str, port: u16) -> Option<Vec<SocketAddr>> {
        let recent = self.recent.lock().expect("lookup cache lock");
        let (at, found) = recent.get(&(host.to_owned(), port))?;
        (at.elapsed() < LOOKUP_REUSE).then(|| found.clone())
    }

    /// Looks `host` up (a name, not an address), or reuses a recent lookup.
    fn look_up(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        if let Some(found) = self.recently(host, port) {
            return Ok(found);
        }
        let found = self.lookup.lookup(host, port)?;
        let mut recent = self.recent.lock().expect("lookup cache lock");
        recent.retain(|_, (at, _)| at.elapsed() < LOOKUP_REUSE);
        recent.insert((host.to_owned(), port), (Instant::now(), found.clone()));
        Ok(found)
    }

    /// The addresses of `host` at `port` a connection may use; `Err` says
    /// why there are none.
    pub fn addresses(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, ureq::Error> {
        let found = match self.without_lookup(host, port) {
            Some(known) => known,
            None => Found {
                addrs: self.look_up(bare(host), port)?,
                literal: false,
            },
        };
        self.checked(host, port, found)
    }

    /// What `host` stands for if that needs no lookup: an address, or a
    /// name looked up within [`LOOKUP_REUSE`].
    fn without_lookup(&self, host: &str, port: u16) -> Option<Found> {
        match bare(host).parse::<IpAddr>() {
            Ok(ip) => Some(Found {
                addrs: vec![SocketAddr::new(ip, port)],
                literal: true,
            }),
            Err(_) => self.recently(bare(host), port).map(|addrs| Found {
                addrs,
                literal: false,
            }),
        }
    }

    /// The addresses of `found` that the policy lets a connection use.
    fn checked(&self, host: &str, port: u16, found: Found) -> Result<Vec<SocketAddr>, ureq::Error> {
        if self
            .policy
            .proxy
            .as_deref()
            .is_some_and(|p| p.eq_ignore_ascii_case(&format!("{host}:{port}")))
        {
            return Ok(found.addrs);
        }
        let (allowed, refused): (Vec<_>, Vec<_>) = found
            .addrs
            .into_iter()
            .partition(|a| self.policy.permits(a.ip(), found.literal));
        match (allowed.is_empty(), refused.first()) {
            (false, _) => Ok(allowed),
            (true, Some(first)) => Err(refusal(format!(
                "{host} resolves to {}, a loopback, private, link-local or multicast address (name the address in base_url or allowed_hosts, or set http.allow_private_networks)",
                first.ip()
            ))),
            (true, None) => Err(ureq::Error::HostNotFound),
        }
    }
}

/// Addresses a host stands for, and whether the URL named one itself.
struct Found {
    addrs: Vec<SocketAddr>,
    literal: bool,
}

/// A host without the brackets of an IPv6 literal.
fn bare(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
}

fn refusal(why: String) -> ureq::Error {
    ureq::Error::Io(std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        AddressRefused(why),
    ))
}

impl Resolver for SandboxResolver {
    fn resolve(
        &self,
        uri: &Uri,
        _config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let (Some(host), Some(scheme)) = (uri.host(), uri.scheme_str()) else {
            return Err(ureq::Error::BadUri(format!("{uri}: no host")));
        };
        let port = uri.port_u16().unwrap_or(match scheme {
            "https" => 443,
            _ => 80,
        });
        // Taken once: a reused lookup that expires between a check and its
        // use must not turn into a lookup without the timeout.
        let addrs = if let Some(known) = self.without_lookup(host, port) {
            self.checked(host, port, known)?
        } else if timeout.after.is_not_happening() {
            self.addresses(host, port)?
        } else {
            // getaddrinfo has no timeout: wait for it on another thread.
            let (tx, rx) = mpsc::sync_channel(1);
            let (resolver, host) = (self.clone_shallow(), host.to_owned());
            std::thread::spawn(move || tx.send(resolver.addresses(&host, port)).ok());
            rx.recv_timeout(*timeout.after)
                .map_err(|_| ureq::Error::Timeout(timeout.reason))??
        };
        let mut out = self.empty();
        for a in addrs.into_iter().take(16) {
            out.push(a);
        }
        Ok(out)
    }
}

impl SandboxResolver {
    fn clone_shallow(&self) -> SandboxResolver {
        SandboxResolver {
            lookup: self.lookup.clone(),
            policy: self.policy.clone(),
            recent: self.recent.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts its lookups; every name is 93.184.216.34, or 10.0.0.1 once
    /// `rebound`.
    #[derive(Default)]
    struct Counting {
        lookups: std::sync::atomic::AtomicUsize,
        rebound: std::sync::atomic::AtomicBool,
    }

    impl Lookup for Counting {
        fn lookup(&self, _host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
            use std::sync::atomic::Ordering::SeqCst;
            self.lookups.fetch_add(1, SeqCst);
            let ip = if self.rebound.load(SeqCst) {
                "10.0.0.1"
            } else {
                "93.184.216.34"
            };
            Ok(vec![SocketAddr::new(ip.parse().unwrap(), port)])
        }
    }

    #[test]
    fn a_name_is_looked_up_once_for_a_while_and_addresses_never() {
        use std::sync::atomic::Ordering::SeqCst;
        let dns = Arc::new(Counting::default());
        let resolver = SandboxResolver::new(dns.clone(), AddressPolicy::default());
        for _ in 0..5 {
            resolver.addresses("api.example.com", 443).unwrap();
        }
        assert_eq!(dns.lookups.load(SeqCst), 1, "one lookup for five requests");
        resolver.addresses("api.example.com", 80).unwrap();
        resolver.addresses("other.example.com", 443).unwrap();
        assert_eq!(
            dns.lookups.load(SeqCst),
            3,
            "another port or name is another lookup"
        );
        resolver.addresses("93.184.216.35", 443).unwrap();
        resolver.addresses("[2606:4700::1111]", 443).unwrap();
        assert_eq!(dns.lookups.load(SeqCst), 3, "an address is not looked up");
        // Within the reuse period a rebinding is not seen; after it, the
        // new address is looked up and checked like any other.
        dns.rebound.store(true, SeqCst);
        assert!(
            resolver.addresses("api.example.com", 443).is_ok(),
            "the address found before"
        );
        resolver
            .recent
            .lock()
            .unwrap()
            .values_mut()
            .for_each(|(at, _)| {
                *at = at.checked_sub(LOOKUP_REUSE).expect("up for 30 s");
            });
        let refused = resolver.addresses("api.example.com", 443).unwrap_err();
        assert!(refused.to_string().contains("10.0.0.1"), "{refused}");
        assert_eq!(dns.lookups.load(SeqCst), 4);
    }

    #[test]
    fn non_public_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:169.254.169.254",
            "::ffff:127.0.0.1",
            "192.0.0.192",
            "198.18.0.1",
            "198.19.255.255",
            "240.0.0.1",
            "::169.254.169.254",
            "::10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
            "64:ff9b:1::1",
            "2002:a9fe:a9fe::1",
            "2002:c0a8:0101::1",
        ] {
            assert!(is_non_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "198.20.0.1",
            "192.0.2.1",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(!is_non_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn a_literal_address_in_the_config_is_allowed_and_nothing_else_private() {
        let policy = AddressPolicy {
            named: ["127.0.0.1".parse().unwrap()].into(),
            ..AddressPolicy::default()
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(policy.permits(ip("127.0.0.1"), true));
        assert!(
            !policy.permits(ip("127.0.0.1"), false),
            "a name that resolves to it"
        );
        assert!(!policy.permits(ip("127.0.0.2"), true));
        assert!(!policy.permits(ip("169.254.169.254"), true));
        assert!(policy.permits(ip("93.184.216.34"), false));
        let open = AddressPolicy {
            allow_private_networks: true,
            ..AddressPolicy::default()
        };
        assert!(open.permits(ip("169.254.169.254"), false));
    }
}
