//! k-of-n custody in a [`crate::Session`]: what a session's keys are (plain keys, any one of
//! which opens a message, or a threshold split across key groups) and how they are opened.
//!
//! - `hyok encrypt --threshold K --key A --key B --key C`: each `--key` is a group of one.
//! - `[keyrings.NAME]` with `threshold = K` and `groups = [[A1, A2], [B], [C]]`: a group
//!   lists keys any of which opens that group's share; `keys = […]` beside them adds keys
//!   that each open the whole message alone (an escrow key).
//! - A plain keyring also reads split messages: its keys are offered to every share through
//!   a decrypt-only opener, so `hyok decrypt --key A --key B` opens a 2-of-3 message.
//!
//! The split itself is [`hyok_keystore::threshold`]; docs/CUSTODY.md is the user's guide.

use std::sync::Arc;

use hyok_keystore::observe::AuditSink;
use hyok_keystore::threshold::{ThresholdKey, MAX_GROUPS};
use hyok_keystore::{KeyManager, Keyring, Registry, SharedKeyStore};

use crate::config::KeyringConfig;
use crate::{Error, Result};

/// The name a split made from `--threshold` records in its EDK (a configured keyring's
/// split records the keyring's name).
pub const CLI_SPLIT_NAME: &str = "threshold";

/// What a session's keys are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KeyPlan {
    /// Key URIs, generator first; each opens a message alone.
    Keys(Vec<String>),
    /// A k-of-n split of each data key across `groups`, plus `extra` keys that each open
    /// the message alone.
    Threshold {
        name: String,
        threshold: usize,
        groups: Vec<Vec<String>>,
        extra: Vec<String>,
    },
}

/// Check k and n of a split before any key is opened.
pub(crate) fn check_threshold(threshold: usize, groups: usize) -> Result<()> {
    if threshold < 2 || threshold > groups || groups > MAX_GROUPS {
        return Err(Error::Config(format!(
            "a threshold of {threshold} over {groups} key group(s) is not possible: k-of-n \
             custody needs 2 <= k <= n <= {MAX_GROUPS}{}",
            if threshold == 1 {
                " (for any-one-of, list the keys without a threshold)"
            } else {
                ""
            }
        )));
    }
    Ok(())
}

/// Check one `[keyrings.NAME]` section: plain keys, or threshold and groups together.
pub(crate) fn check_keyring(name: &str, k: &KeyringConfig) -> Result<()> {
    match (k.threshold, k.groups.is_empty()) {
        (None, true) if k.keys.is_empty() => {
            Err(Error::Config(format!("keyring {name:?} lists no keys")))
        }
        (None, true) => Ok(()),
        (None, false) => Err(Error::Config(format!(
            "keyring {name:?} lists groups but no threshold (add threshold = K)"
        ))),
        (Some(_), true) => Err(Error::Config(format!(
            "keyring {name:?} has a threshold but no groups (add groups = [[URI, …], …])"
        ))),
        (Some(t), false) => {
            check_threshold(t, k.groups.len())
                .map_err(|e| Error::Config(format!("keyring {name:?}: {e}")))?;
            match k.groups.iter().position(Vec::is_empty) {
                Some(i) => Err(Error::Config(format!(
                    "keyring {name:?}: group {} lists no keys",
                    i + 1
                ))),
                None => Ok(()),
            }
        }
    }
}

impl KeyPlan {
    /// The plan of a configured keyring.
    pub(crate) fn of_keyring(name: &str, k: &KeyringConfig) -> Self {
        match k.threshold {
            Some(threshold) => Self::Threshold {
                name: name.to_owned(),
                threshold,
                groups: k.groups.clone(),
                extra: k.keys.clone(),
            },
            None => Self::Keys(k.keys.clone()),
        }
    }

    /// The plan of `--threshold K --key A --key B …`: each key a group of one.
    pub(crate) fn of_cli(threshold: usize, keys: &[String]) -> Result<Self> {
        check_threshold(threshold, keys.len()).map_err(|e| Error::Usage {
            message: match e {
                Error::Config(m) => m,
                other => other.to_string(),
            },
            hint: Some("give at least K --key keys with --threshold K".into()),
        })?;
        Ok(Self::Threshold {
            name: CLI_SPLIT_NAME.to_owned(),
            threshold,
            groups: keys.iter().map(|k| vec![k.clone()]).collect(),
            extra: Vec::new(),
        })
    }

    /// Open every key and compose the keyring. Key groups get their own managers with the
    /// session's audit sink, so each share's wrap and unwrap is recorded like any key use.
    pub(crate) fn open(
        &self,
        registry: &Registry,
        audit: Option<Arc<dyn AuditSink>>,
    ) -> Result<Keyring> {
        let open_all = |uris: &[String]| -> Result<Vec<SharedKeyStore>> {
            Ok(uris
                .iter()
                .map(|u| registry.open_key(u))
                .collect::<std::result::Result<Vec<_>, _>>()?)
        };
        let manager = |keys: Vec<SharedKeyStore>| -> Result<KeyManager> {
            let m = KeyManager::new(Keyring::new(keys)?);
            Ok(match &audit {
                Some(sink) => m.with_audit(sink.clone()),
                None => m,
            })
        };
        match self {
            Self::Keys(uris) => {
                let keys = open_all(uris)?;
                let opener = ThresholdKey::opener(CLI_SPLIT_NAME, vec![manager(keys.clone())?]);
                Ok(Keyring::new(keys)?.with_openers(vec![Arc::new(opener)]))
            }
            Self::Threshold {
                name,
                threshold,
                groups,
                extra,
            } => {
                let groups = groups
                    .iter()
                    .map(|g| manager(open_all(g)?))
                    .collect::<Result<Vec<_>>>()?;
                let split: SharedKeyStore = Arc::new(ThresholdKey::new(name, *threshold, groups)?);
                let mut keys = vec![split];
                keys.extend(open_all(extra)?);
                Ok(Keyring::new(keys)?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn keyring_sections_are_checked() {
        let ok = Config::parse(
            "[keyrings.q]\nthreshold = 2\ngroups = [[\"raw-aes:a/b?file=x\", \"raw-aes:a/c?file=y\"], [\"raw-aes:a/d?file=z\"]]\n",
        )
        .unwrap();
        assert_eq!(
            KeyPlan::of_keyring("q", &ok.keyrings["q"]),
            KeyPlan::Threshold {
                name: "q".into(),
                threshold: 2,
                groups: vec![
                    vec!["raw-aes:a/b?file=x".into(), "raw-aes:a/c?file=y".into()],
                    vec!["raw-aes:a/d?file=z".into()]
                ],
                extra: vec![],
            }
        );
        for (bad, says) in [
            ("threshold = 2\n", "no groups"),
            ("groups = [[\"a:b\"], [\"a:c\"]]\n", "no threshold"),
            (
                "threshold = 3\ngroups = [[\"a:b\"], [\"a:c\"]]\n",
                "2 <= k <= n",
            ),
            (
                "threshold = 1\ngroups = [[\"a:b\"], [\"a:c\"]]\n",
                "without a threshold",
            ),
            (
                "threshold = 2\ngroups = [[\"a:b\"], []]\n",
                "group 2 lists no keys",
            ),
            ("keys = []\n", "lists no keys"),
        ] {
            let err = Config::parse(&format!("[keyrings.q]\n{bad}")).unwrap_err();
            assert!(err.to_string().contains(says), "{bad}: {err}");
        }
        assert!(KeyPlan::of_cli(2, &["a:b".into()]).is_err());
        assert!(KeyPlan::of_cli(2, &["a:b".into(), "a:c".into()]).is_ok());
    }
}
