//! `wasi:config/store@0.2.0-draft-2024-09-27` for the guest (what Spin's variables provide):
//! values the operator gives the host, by lower-case key (`phone_code_secret`), from a
//! `--config-file` ([`read_config_file`]) or [`crate::HostBuilder::config`]. The guest lets its
//! environment override them (`set_my_phone_wire::settings`). Tests can make the store fail.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use wasmtime::component::HasData;

use crate::bindings::config_store as store;

/// The values the guest reads through `wasi:config/store`; cheap to clone, shared by clones.
#[derive(Clone, Debug, Default)]
pub struct ConfigStore {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    values: BTreeMap<String, String>,
    /// When set, every read answers this `io` error (a vault that is down, for tests).
    failure: Option<String>,
}

impl ConfigStore {
    /// A store holding `values` (keys as given: settings use their lower-case names).
    pub fn new<K: Into<String>, V: Into<String>>(values: impl IntoIterator<Item = (K, V)>) -> Self {
        let store = Self::default();
        for (key, value) in values {
            store.set(key, value);
        }
        store
    }

    /// Sets `key` to `value`; the next request reads it.
    pub fn set(&self, key: impl Into<String>, value: impl Into<String>) {
        self.write().values.insert(key.into(), value.into());
    }

    /// Sets `key` to `value` unless it holds a value already (a default the operator may override).
    pub fn set_default(&self, key: impl Into<String>, value: impl Into<String>) {
        self.write()
            .values
            .entry(key.into())
            .or_insert_with(|| value.into());
    }

    /// Makes every read fail with `why` (`None`: reads work again).
    pub fn fail_with(&self, why: Option<String>) {
        self.write().failure = why;
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.inner
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self, key: &str) -> Result<Option<String>, store::Error> {
        let inner = self.read();
        match &inner.failure {
            Some(why) => Err(store::Error::Io(why.clone())),
            None => Ok(inner.values.get(key).cloned()),
        }
    }

    fn get_all(&self) -> Result<Vec<(String, String)>, store::Error> {
        let inner = self.read();
        match &inner.failure {
            Some(why) => Err(store::Error::Io(why.clone())),
            None => Ok(inner
                .values
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()),
        }
    }
}

/// Selects [`ConfigView`] as what the config bindings see of the store's data.
pub(crate) struct Config;

impl HasData for Config {
    type Data<'a> = ConfigView<'a>;
}

/// A borrowed view of the host's config store.
pub(crate) struct ConfigView<'a> {
    pub(crate) store: &'a ConfigStore,
}

impl store::Host for ConfigView<'_> {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, store::Error>> {
        Ok(self.store.get(&key))
    }

    async fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, store::Error>> {
        Ok(self.store.get_all())
    }
}

/// Reads a settings file for `--config-file`: dotenv lines `NAME=value` (either spelling of a
/// setting: `PHONE_CODE_SECRET` or `phone_code_secret`), `#` comments, blank lines, an optional
/// `export ` prefix and optional single or double quotes around the value. Keys come back in
/// lower case, as `wasi:config` names them.
///
/// Refuses, naming the file (and line), but never a value: a file group or others may read
/// (secrets belong in a file only its owner reads: `chmod 600`), a line that is not
/// `NAME=value`, and a name that is not a setting (a typo would silently not apply).
pub fn read_config_file(path: &Path) -> Result<Vec<(String, String)>, String> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|err| format!("cannot open {shown}: {err}"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = file
            .metadata()
            .map_err(|err| format!("cannot read the permissions of {shown}: {err}"))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "{shown} may hold secrets but group or others can access it (mode {:03o}); \
                 run `chmod 600 {shown}`",
                mode & 0o777
            ));
        }
    }
    let text =
        std::io::read_to_string(file).map_err(|err| format!("cannot read {shown}: {err}"))?;
    parse_config(&text).map_err(|(line, problem)| format!("{shown} line {line}: {problem}"))
}

/// The pairs of a dotenv text, or the first bad line's number and what is wrong with it.
fn parse_config(text: &str) -> Result<Vec<(String, String)>, (usize, String)> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((name, value)) = line.split_once('=') else {
            return Err((number, "expected NAME=value".into()));
        };
        let name = name.trim();
        let Some(setting) = set_my_phone_wire::settings::find(name) else {
            return Err((
                number,
                format!("{name:?} is not a setting (docs/configuration.md lists them)"),
            ));
        };
        let value = value.trim();
        let value = [('"', '"'), ('\'', '\'')]
            .iter()
            .find_map(|(open, close)| {
                value
                    .strip_prefix(*open)
                    .and_then(|rest| rest.strip_suffix(*close))
            })
            .unwrap_or(value);
        let key = set_my_phone_wire::settings::config_key(setting.name);
        pairs.retain(|(known, _)| *known != key);
        pairs.push((key, value.to_owned()));
    }
    Ok(pairs)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failing test should stop loudly"
)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_lines_become_lower_case_keys() {
        let text = "# secrets\n\nAUTH_ISSUER=https://id.example.com\nexport phone_code_secret = \"a b=c\"\nAUTH_JWKS='{\"keys\":[]}'\nAUTH_ISSUER=https://later.example.com\n";
        assert_eq!(
            parse_config(text).unwrap(),
            vec![
                ("phone_code_secret".to_owned(), "a b=c".to_owned()),
                ("auth_jwks".to_owned(), r#"{"keys":[]}"#.to_owned()),
                (
                    "auth_issuer".to_owned(),
                    "https://later.example.com".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn bad_lines_are_named_without_their_values() {
        let (line, problem) = parse_config("AUTH_ISSUER=x\nno equals sign here\n").unwrap_err();
        assert_eq!((line, problem.as_str()), (2, "expected NAME=value"));
        let (line, problem) = parse_config("PHONE_CODE_SECRT=hunter2\n").unwrap_err();
        assert_eq!(line, 1);
        assert!(
            problem.contains("PHONE_CODE_SECRT") && !problem.contains("hunter2"),
            "{problem}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_file_others_may_read_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("config-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("settings.env");
        std::fs::write(&path, "PHONE_CODE_SECRET=do-not-print-me\n").unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let error = read_config_file(&path).unwrap_err();
            assert!(error.contains("chmod 600"), "{error}");
            assert!(error.contains(&format!("{mode:03o}")), "{error}");
            assert!(!error.contains("do-not-print-me"), "{error}");
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(
                read_config_file(&path).unwrap(),
                vec![("phone_code_secret".to_owned(), "do-not-print-me".to_owned())]
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
