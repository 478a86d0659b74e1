//! Where the sources given through the HTTP API may point (issue 19). Anyone who may create a
//! run through the API must not be able to read or probe the server's files, or reach
//! addresses only the server can reach (a cloud metadata endpoint, the database port). The
//! CLI, run by whoever owns the machine, stays unrestricted.
//!
//! - **Files**: a `file://` URI or a path must resolve — after `..`, percent-decoding and
//!   symlinks — inside one of the configured roots. Anything else is refused with the same
//!   answer whether or not the file exists.
//! - **Network**: the host of an `rtsp://`/`http(s)://` source, and every address it resolves
//!   to, is checked against deny rules (link-local and metadata ranges always; the server's
//!   own database, broker and API ports on loopback by default) and, when allow rules exist,
//!   must match one of them.
//!
//! The rules and checks are pure; resolving names is the caller's (the API checks at
//! creation, the engine again right before it connects, and pins the address it checked).

use serde::{Deserialize, Serialize};
use sightline_core::FieldErrors;
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};

/// `[api.source_hosts]`: allow and deny lists of network destinations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SourceHosts {
    /// When not empty, a network source must match one of these: a CIDR (`10.1.0.0/16`), an
    /// address, or a host name, each optionally with `:PORT` (`[::1]:554` for IPv6).
    pub allow: Vec<String>,
    /// Refused destinations, checked before `allow`, in addition to the built-in ones
    /// (169.254.0.0/16, fe80::/10, 0.0.0.0/8, cloud metadata addresses, this server's
    /// database, broker and API ports, and well-known database/broker ports on loopback).
    pub deny: Vec<String>,
}

impl SourceHosts {
    pub fn validate(&self, path: &str, e: &mut FieldErrors) {
        for (list, rules) in [("allow", &self.allow), ("deny", &self.deny)] {
            for (i, r) in rules.iter().enumerate() {
                if let Err(m) = HostRule::parse(r) {
                    e.push(format!("{path}.{list}[{i}]"), m);
                }
            }
        }
    }
}

/// One destination rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRule {
    Net(ipnet::IpNet, Option<u16>),
    Name(String, Option<u16>),
}

fn split_port(s: &str) -> Result<(&str, Option<u16>), String> {
    // `[v6]:port`, `v4:port`, `name:port`, or no port (a bare v6 address has several `:`).
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{s:?}: missing `]`"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().map_err(|_| format!("{s:?}: bad port"))?),
            None if after.is_empty() => None,
            None => return Err(format!("{s:?}: expected `:PORT` after `]`")),
        };
        return Ok((host, port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => {
            Ok((h, Some(p.parse().map_err(|_| format!("{s:?}: bad port"))?)))
        }
        _ => Ok((s, None)),
    }
}

impl HostRule {
    pub fn parse(s: &str) -> Result<HostRule, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty rule".into());
        }
        let (host, port) = split_port(s)?;
        if let Ok(net) = host.parse::<ipnet::IpNet>() {
            return Ok(HostRule::Net(net, port));
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(HostRule::Net(ipnet::IpNet::from(ip), port));
        }
        let valid = host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'*');
        if !valid {
            return Err(format!(
                "{s:?} is not a CIDR, an address or a host name (optionally with :PORT)"
            ));
        }
        Ok(HostRule::Name(host.to_ascii_lowercase(), port))
    }

    fn port_matches(rule: Option<u16>, port: u16) -> bool {
        rule.is_none_or(|p| p == port)
    }

    /// Whether `host` (as written in the URI) resolving to `ip`, port `port`, matches.
    fn matches(&self, host: &str, ip: IpAddr, port: u16) -> bool {
        match self {
            HostRule::Net(net, p) => net.contains(&canonical(ip)) && Self::port_matches(*p, port),
            HostRule::Name(name, p) => {
                let h = host.trim_end_matches('.').to_ascii_lowercase();
                let hit = match name.strip_prefix("*.") {
                    Some(suffix) => h.ends_with(&format!(".{suffix}")),
                    None => h == *name,
                };
                hit && Self::port_matches(*p, port)
            }
        }
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are their IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Why a source is refused. The message is the same for every file outside the roots
/// (existing or not) and never names anything on the server's file system.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{public}")]
pub struct Denied {
    /// What the client is told.
    pub public: String,
    /// What the log says (may name paths and addresses).
    pub detail: String,
}

impl Denied {
    fn file(detail: String) -> Denied {
        Denied {
            public: "source not allowed: file sources must be inside the server's allowed \
                     directories ([api].file_roots)"
                .into(),
            detail,
        }
    }

    fn host(detail: String) -> Denied {
        Denied {
            public: "source not allowed: this address is not reachable through the API \
                     ([api.source_hosts])"
                .into(),
            detail,
        }
    }
}

/// The compiled policy.
#[derive(Debug, Clone, Default)]
pub struct SourcePolicy {
    /// Canonical roots.
    roots: Vec<PathBuf>,
    allow: Vec<HostRule>,
    deny: Vec<HostRule>,
}

/// Ranges no source given through the API may reach, whatever the configuration.
pub const ALWAYS_DENIED: &[&str] = &[
    "169.254.0.0/16",
    "fe80::/10",
    "0.0.0.0/8",
    "::/128",
    "100.100.100.200/32", // Alibaba Cloud metadata
    "fd00:ec2::254/128",  // AWS metadata over IPv6
];

impl SourcePolicy {
    /// `roots` are canonicalised (missing ones are skipped and reported by the caller);
    /// `extra_deny` adds rules such as this server's own ports on loopback.
    pub fn new(roots: &[PathBuf], hosts: &SourceHosts, extra_deny: &[String]) -> SourcePolicy {
        let parse = |v: &[String]| v.iter().filter_map(|r| HostRule::parse(r).ok()).collect();
        let mut deny: Vec<HostRule> = ALWAYS_DENIED
            .iter()
            .filter_map(|r| HostRule::parse(r).ok())
            .collect();
        deny.extend(parse(&hosts.deny));
        deny.extend(parse(extra_deny));
        SourcePolicy {
            roots: roots.iter().filter_map(|r| r.canonicalize().ok()).collect(),
            allow: parse(&hosts.allow),
            deny,
        }
    }

    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// Checks one resolved destination of a network source.
    pub fn check_addr(&self, host: &str, ip: IpAddr, port: u16) -> Result<(), Denied> {
        if let Some(r) = self.deny.iter().find(|r| r.matches(host, ip, port)) {
            return Err(Denied::host(format!(
                "{host} ({ip}) port {port} matches deny rule {r:?}"
            )));
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|r| r.matches(host, ip, port)) {
            return Err(Denied::host(format!(
                "{host} ({ip}) port {port} matches no allow rule"
            )));
        }
        Ok(())
    }

    /// The file a `file://` URI or path names, if it lies inside a root (after `..`,
    /// percent-decoding and symlinks). Nothing but `canonicalize` touches the file system,
    /// and a path outside every root is refused before that.
    pub fn check_file(&self, source: &str) -> Result<PathBuf, Denied> {
        let raw = match source.strip_prefix("file://") {
            Some(rest) => {
                let path = rest.strip_prefix("localhost").unwrap_or(rest);
                percent_decode(path)
                    .ok_or_else(|| Denied::file(format!("{source:?}: bad escape")))?
            }
            None => source.to_owned(),
        };
        if raw.contains('\0') || raw.is_empty() {
            return Err(Denied::file(format!("{source:?}: NUL byte or empty")));
        }
        let inside = |p: &Path| self.roots.iter().any(|r| p.starts_with(r));
        let path = Path::new(&raw);
        // A relative path is relative to the roots (the first where it exists).
        let lexical = if path.is_relative() {
            let candidates: Vec<PathBuf> = self
                .roots
                .iter()
                .map(|r| normalize(&r.join(path)))
                .collect();
            candidates
                .iter()
                .find(|c| inside(c) && c.exists())
                .or_else(|| candidates.iter().find(|c| inside(c)))
                .cloned()
                .unwrap_or_else(|| normalize(path))
        } else {
            normalize(path)
        };
        if !inside(&lexical) {
            return Err(Denied::file(format!(
                "{} is outside the roots {:?}",
                lexical.display(),
                self.roots
            )));
        }
        match lexical.canonicalize() {
            Ok(real) if inside(&real) => Ok(real),
            Ok(real) => Err(Denied::file(format!(
                "{} resolves to {} outside the roots",
                lexical.display(),
                real.display()
            ))),
            // Inside a root but missing: the caller's ordinary "cannot open" error applies;
            // nothing outside the roots is revealed.
            Err(_) => Ok(lexical),
        }
    }
}

/// What a network source may connect to, checked: `uri` rewritten to the checked address
/// where that is safe (`rtsp://`, `http://`), so a second name lookup by the media stack
/// cannot land elsewhere (DNS rebinding); `https://`/`rtsps://` keep their name for TLS and
/// are checked right before the connection instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedSource {
    pub uri: String,
    /// The address the check accepted, if the source is a network one.
    pub addr: Option<std::net::SocketAddr>,
}

impl SourcePolicy {
    /// Checks a source URI: files against the roots, network sources against the host rules
    /// after resolving them with `resolve` (every address must pass), `test://` passes.
    pub fn check_source(
        &self,
        source: &str,
        resolve: impl Fn(&str, u16) -> std::io::Result<Vec<IpAddr>>,
    ) -> Result<CheckedSource, Denied> {
        let scheme = source
            .split_once("://")
            .map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            None | Some("file") => {
                let path = self.check_file(source)?;
                Ok(CheckedSource {
                    uri: format!("file://{}", path.display()),
                    addr: None,
                })
            }
            Some("test") => Ok(CheckedSource {
                uri: source.to_owned(),
                addr: None,
            }),
            Some(s @ ("rtsp" | "rtsps" | "rtspt" | "rtspu" | "http" | "https")) => {
                let mut url = url::Url::parse(source).map_err(|e| Denied {
                    public: format!("source not allowed: not a valid {s} URL"),
                    detail: e.to_string(),
                })?;
                let host = url
                    .host_str()
                    .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
                    .filter(|h| !h.is_empty())
                    .ok_or_else(|| Denied::host(format!("{s} URL without a host")))?;
                let port = url.port().unwrap_or(match s {
                    "http" => 80,
                    "https" => 443,
                    "rtsps" => 322,
                    _ => 554,
                });
                let ips = match host.parse::<IpAddr>() {
                    Ok(ip) => vec![ip],
                    Err(_) => resolve(&host, port).map_err(|e| Denied {
                        public: format!("source not allowed: cannot resolve the host {host:?}"),
                        detail: e.to_string(),
                    })?,
                };
                if ips.is_empty() {
                    return Err(Denied::host(format!("{host} resolves to nothing")));
                }
                for ip in &ips {
                    self.check_addr(&host, *ip, port)?;
                }
                let ip = ips[0];
                if matches!(s, "rtsp" | "rtspt" | "rtspu" | "http")
                    && host.parse::<IpAddr>().is_err()
                {
                    let _ = url.set_ip_host(ip);
                }
                Ok(CheckedSource {
                    uri: url.to_string(),
                    addr: Some(std::net::SocketAddr::new(ip, port)),
                })
            }
            Some(other) => Err(Denied {
                public: format!("source not allowed: unsupported scheme {other:?}"),
                detail: source.to_owned(),
            }),
        }
    }
}

/// `..` and `.` resolved without the file system; relative paths are taken from `/`.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(s) => out.push(s),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(dir: &Path) -> SourcePolicy {
        SourcePolicy::new(
            &[dir.join("root")],
            &SourceHosts {
                allow: vec![],
                deny: vec!["10.9.0.0/16".into()],
            },
            &["127.0.0.0/8:5432".into(), "[::1]:5432".into()],
        )
    }

    #[test]
    fn files_must_resolve_inside_a_root() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("root/sub")).unwrap();
        std::fs::write(d.path().join("root/sub/a.mp4"), b"x").unwrap();
        std::fs::write(d.path().join("secret.txt"), b"x").unwrap();
        std::os::unix::fs::symlink(d.path().join("secret.txt"), d.path().join("root/link.mp4"))
            .unwrap();
        let p = policy(d.path());
        let root = d.path().join("root").canonicalize().unwrap();
        let ok = format!("file://{}/sub/a.mp4", root.display());
        assert_eq!(p.check_file(&ok).unwrap(), root.join("sub/a.mp4"));
        let missing = format!("{}/sub/none.mp4", root.display());
        assert!(
            p.check_file(&missing).is_ok(),
            "inside a root: the open reports it"
        );
        let bad = [
            "file:///etc/passwd".to_owned(),
            "/root/.bash_history".to_owned(),
            format!("file://{}/../secret.txt", root.display()),
            format!("file://{}/%2e%2e/secret.txt", root.display()),
            format!("file://{}/sub/%2E%2E/%2e%2e/secret.txt", root.display()),
            format!("{}/link.mp4", root.display()),
            format!("{}/sub/a.mp4\0", root.display()),
            "file://%zz".to_owned(),
            "relative/../../etc/passwd".to_owned(),
        ];
        let first = p.check_file(&bad[0]).unwrap_err().public;
        for b in &bad {
            let e = p.check_file(b).unwrap_err();
            assert_eq!(e.public, first, "{b:?}: the same answer");
            assert!(
                !e.public.contains("/etc") && !e.public.contains("secret"),
                "{e:?}"
            );
        }
    }

    #[test]
    fn network_destinations() {
        let d = tempfile::tempdir().unwrap();
        let p = policy(d.path());
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(
            p.check_addr("169.254.169.254", ip("169.254.169.254"), 80)
                .is_err()
        );
        assert!(
            p.check_addr("x", ip("::ffff:169.254.169.254"), 80).is_err(),
            "v4-mapped"
        );
        assert!(p.check_addr("db", ip("127.0.0.1"), 5432).is_err());
        assert!(p.check_addr("db", ip("::1"), 5432).is_err());
        assert!(
            p.check_addr("cam", ip("127.0.0.1"), 8554).is_ok(),
            "other loopback ports"
        );
        assert!(
            p.check_addr("cam", ip("10.9.3.4"), 554).is_err(),
            "configured deny"
        );
        assert!(p.check_addr("cam", ip("192.168.1.20"), 554).is_ok());
        assert!(p.check_addr("any", ip("0.0.0.0"), 554).is_err());
        let allow = SourcePolicy::new(
            &[],
            &SourceHosts {
                allow: vec!["192.168.1.0/24".into(), "*.cams.example.com:554".into()],
                deny: vec![],
            },
            &[],
        );
        assert!(allow.check_addr("a", ip("192.168.1.9"), 554).is_ok());
        assert!(allow.check_addr("a", ip("192.168.2.9"), 554).is_err());
        assert!(
            allow
                .check_addr("door.cams.example.com", ip("8.8.8.8"), 554)
                .is_ok()
        );
        assert!(
            allow
                .check_addr("door.cams.example.com", ip("8.8.8.8"), 80)
                .is_err()
        );
        assert!(
            allow.check_addr("x", ip("169.254.1.1"), 554).is_err(),
            "always denied"
        );
    }

    #[test]
    fn sources_are_checked_by_kind_and_pinned() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("root")).unwrap();
        std::fs::write(d.path().join("root/clip.mp4"), b"x").unwrap();
        let p = policy(d.path());
        let root = d.path().join("root").canonicalize().unwrap();
        let none = |_: &str, _: u16| Ok(vec![]);
        let c = p.check_source("clip.mp4", none).unwrap();
        assert_eq!(
            c.uri,
            format!("file://{}", root.join("clip.mp4").display()),
            "relative to the roots"
        );
        assert!(p.check_source("../clip.mp4", none).is_err());
        assert!(p.check_source("test://ball", none).is_ok());
        assert!(p.check_source("gopher://x/", none).is_err());
        let to = |ip: &'static str| move |_: &str, _: u16| Ok(vec![ip.parse().unwrap()]);
        let c = p
            .check_source("rtsp://u:p@cam.lan/live", to("192.168.1.5"))
            .unwrap();
        assert_eq!(
            c.uri, "rtsp://u:p@192.168.1.5/live",
            "pinned to the checked address"
        );
        assert_eq!(c.addr.unwrap().port(), 554);
        // The transport-forcing schemes are checked and pinned the same way.
        let c = p
            .check_source("rtspu://cam.lan:8554/live", to("192.168.1.5"))
            .unwrap();
        assert_eq!(c.uri, "rtspu://192.168.1.5:8554/live");
        assert!(
            p.check_source("rtspu://127.0.0.1:5432/", none).is_err(),
            "the database port over rtspu"
        );
        let c = p
            .check_source("https://cam.lan/x.m3u8", to("192.168.1.5"))
            .unwrap();
        assert_eq!(c.uri, "https://cam.lan/x.m3u8", "TLS keeps its name");
        assert!(
            p.check_source("http://metadata/", to("169.254.169.254"))
                .is_err()
        );
        assert!(
            p.check_source("rtsp://127.0.0.1:5432/", none).is_err(),
            "the database port"
        );
        assert!(p.check_source("http://[fe80::1]/", none).is_err());
        let two = |_: &str, _: u16| {
            Ok(vec![
                "192.168.1.5".parse().unwrap(),
                "169.254.169.254".parse().unwrap(),
            ])
        };
        assert!(
            p.check_source("rtsp://rebind.example/", two).is_err(),
            "every address must pass"
        );
        let fail = |_: &str, _: u16| Err(std::io::Error::other("nxdomain"));
        assert!(p.check_source("rtsp://nowhere.invalid/", fail).is_err());
    }

    #[test]
    fn rules_parse_or_name_the_problem() {
        assert!(matches!(
            HostRule::parse("10.0.0.0/8"),
            Ok(HostRule::Net(_, None))
        ));
        assert!(matches!(
            HostRule::parse("[::1]:554"),
            Ok(HostRule::Net(_, Some(554)))
        ));
        assert!(matches!(
            HostRule::parse("fe80::1"),
            Ok(HostRule::Net(_, None))
        ));
        assert!(matches!(
            HostRule::parse("cam.local:8554"),
            Ok(HostRule::Name(_, Some(8554)))
        ));
        assert!(HostRule::parse("a b").is_err());
        assert!(HostRule::parse("x:port").is_err());
        let mut e = FieldErrors::new();
        SourceHosts {
            allow: vec!["ok.example".into()],
            deny: vec!["bad host".into()],
        }
        .validate("api.source_hosts", &mut e);
        assert!(e.to_string().contains("api.source_hosts.deny[0]"), "{e}");
    }
}
