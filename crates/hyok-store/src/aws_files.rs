//! The AWS shared config and credentials files (`~/.aws/config`, `~/.aws/credentials`):
//! only the static settings hyok needs (access keys, session token, region, endpoint).
//! Profiles that need a process, SSO or role assumption are left to the environment.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Settings read for one profile. `Debug` redacts the secrets.
#[derive(Clone, Default)]
pub(crate) struct Profile {
    pub(crate) access_key_id: Option<String>,
    pub(crate) secret_access_key: Option<String>,
    pub(crate) session_token: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) endpoint_url: Option<String>,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .finish()
    }
}

/// Parse an INI file into `section -> key -> value` (keys lower-cased, comments dropped).
fn parse_ini(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut section: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.trim().to_owned());
            continue;
        }
        // Indented lines continue a nested block (e.g. `s3 =` sub-settings): skipped.
        if let (Some(sec), Some((k, v))) = (&section, line.split_once('=')) {
            out.entry(sec.clone())
                .or_default()
                .insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    out
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

fn env_path(var: &str, default_rel: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => home().map(|h| h.join(default_rel)),
    }
}

/// Read profile `name` from the shared files (missing files are not an error).
pub(crate) fn load(name: &str) -> Profile {
    let mut p = Profile::default();
    if let Some(path) = env_path("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials") {
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Some(sec) = parse_ini(&text).get(name) {
                p.access_key_id = sec.get("aws_access_key_id").cloned();
                p.secret_access_key = sec.get("aws_secret_access_key").cloned();
                p.session_token = sec.get("aws_session_token").cloned();
                p.region = sec.get("region").cloned();
            }
        }
    }
    if let Some(path) = env_path("AWS_CONFIG_FILE", ".aws/config") {
        if let Ok(text) = std::fs::read_to_string(&path) {
            let ini = parse_ini(&text);
            let sec = if name == "default" {
                ini.get("default").or_else(|| ini.get("profile default"))
            } else {
                ini.get(&format!("profile {name}"))
            };
            if let Some(sec) = sec {
                if p.access_key_id.is_none() {
                    p.access_key_id = sec.get("aws_access_key_id").cloned();
                    p.secret_access_key = sec.get("aws_secret_access_key").cloned();
                    p.session_token = sec.get("aws_session_token").cloned();
                }
                p.region = p.region.or_else(|| sec.get("region").cloned());
                p.endpoint_url = sec.get("endpoint_url").cloned();
            }
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_profiles() {
        let ini = parse_ini(
            "# c\n[default]\naws_access_key_id = AK\nregion=eu-central-1\n\n[profile x]\nendpoint_url = http://127.0.0.1:9000\ns3 =\n  addressing_style = path\n",
        );
        assert_eq!(ini["default"]["aws_access_key_id"], "AK");
        assert_eq!(ini["default"]["region"], "eu-central-1");
        assert_eq!(ini["profile x"]["endpoint_url"], "http://127.0.0.1:9000");
        let p = Profile {
            secret_access_key: Some("s".into()),
            ..Default::default()
        };
        assert!(!format!("{p:?}").contains("\"s\""));
    }
}
