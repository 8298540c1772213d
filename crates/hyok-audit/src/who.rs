//! Who is writing: host, OS user, process, configured identity. Captured once per log.

use crate::line::{cap, MAX_FIELD};
use crate::log::LogConfig;

/// The identity written into every record of one process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Who {
    pub(crate) host: String,
    pub(crate) user: String,
    pub(crate) uid: Option<u32>,
    pub(crate) pid: u32,
    pub(crate) identity: Option<String>,
}

impl Who {
    pub(crate) fn current(config: &LogConfig) -> Self {
        let uname = rustix::system::uname();
        let host = uname.nodename().to_string_lossy().into_owned();
        let uid = rustix::process::getuid().as_raw();
        // The kernel's uid is authoritative; the name comes from the passwd database,
        // and only if that has none, from the environment.
        let user = passwd_name(uid)
            .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(|| format!("uid:{uid}"));
        Self {
            host: cap(&host, 256),
            user: cap(&user, 256),
            uid: Some(uid),
            pid: std::process::id(),
            identity: config.identity.as_deref().map(|i| cap(i, MAX_FIELD)),
        }
    }
}

/// User name of `uid` from /etc/passwd (bounded read; `None` if absent or unreadable).
fn passwd_name(uid: u32) -> Option<String> {
    use std::io::Read as _;
    let mut text = String::new();
    std::fs::File::open("/etc/passwd")
        .ok()?
        .take(4 * 1024 * 1024)
        .read_to_string(&mut text)
        .ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let _pw = f.next()?;
        let id: u32 = f.next()?.parse().ok()?;
        (id == uid && !name.is_empty()).then(|| name.to_owned())
    })
}
