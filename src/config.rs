//! `vledger serve`'s settings, each declared once, as a field of [`ServeSettings`]: the field
//! gives its flag (`--region`), its environment variable (`VLEDGER_REGION`), its key in the TOML
//! config file (`region`), its default and its checked type. The layers, the first that gives
//! a value winning: command-line flags, then `VLEDGER_*` environment variables, then the file
//! given with `--config` (or `VLEDGER_CONFIG`), then the defaults.
//!
//! ```toml
//! data = "/var/lib/vledger"
//! listen = "0.0.0.0:8080"
//! region = "cq"
//! region_name = "Chongqing Science and Technology Bureau"
//! origin = "vledger.example.gov.cn/cq"
//! admin_key = "base64 public key of the first admin (first start only)"
//! log_format = "json"
//! witnesses = ["<witness verifier key>@https://witness.example"]
//! header_read_timeout_ms = 10000
//! idle_timeout_ms = 60000
//! max_connections = 4096
//! max_event_subscribers = 1024
//! ```
//!
//! Values are parsed into their checked types (region id, key, witness, non-zero limits) once,
//! here; a wrong one is refused with the setting and the layer it came from named.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::num::{NonZeroU64, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Args};
use figment::error::Kind;
use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::Deserialize;
use vledger_api::connections::{HEADER_READ_TIMEOUT, IDLE_TIMEOUT};
use vledger_api::witnessing::WitnessTarget;
use vledger_api::ConnectionLimits;
use vledger_domain::limits::{MAX_CONNECTIONS, MAX_EVENT_SUBSCRIBERS};
use vledger_domain::types::RegionId;
use vledger_tlog::keys::PublicKey;

/// How the node writes its logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line, with the request id of each HTTP request.
    Json,
}

/// A witness to send each checkpoint to, given as `<witness verifier key>@<url>`.
#[derive(Debug, Clone)]
pub struct Witness(pub WitnessTarget);

impl std::str::FromStr for Witness {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        WitnessTarget::parse(text).map(Self)
    }
}

impl<'de> Deserialize<'de> for Witness {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A region of the federation map, given as `<region>=<verifier key>@<url>`.
#[derive(Debug, Clone)]
pub struct FederationPeer(pub vledger_federation::Peer);

impl std::str::FromStr for FederationPeer {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        vledger_federation::Peer::parse(text).map(Self)
    }
}

impl<'de> Deserialize<'de> for FederationPeer {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The prefix of every setting's environment variable.
const ENV_PREFIX: &str = "VLEDGER_";

const DEFAULT_HEADER_READ_TIMEOUT_MS: NonZeroU64 = millis(HEADER_READ_TIMEOUT);
const DEFAULT_IDLE_TIMEOUT_MS: NonZeroU64 = millis(IDLE_TIMEOUT);
const DEFAULT_MAX_CONNECTIONS: NonZeroUsize =
    NonZeroUsize::new(MAX_CONNECTIONS).expect("a positive bound");
const DEFAULT_MAX_EVENT_SUBSCRIBERS: NonZeroUsize =
    NonZeroUsize::new(MAX_EVENT_SUBSCRIBERS).expect("a positive bound");

const fn millis(timeout: Duration) -> NonZeroU64 {
    NonZeroU64::new(timeout.as_millis() as u64).expect("a positive timeout")
}

/// The settings of a node. Every setting may also come from the config file (its name with
/// `_`) or from `VLEDGER_<NAME>` (its name in capitals, e.g. `VLEDGER_MAX_CONNECTIONS`); a flag
/// wins over the variable, which wins over the file.
#[derive(Debug, Args, Deserialize)]
#[serde(deny_unknown_fields)]
#[command(
    after_help = "Every setting but --config, --witness and --peer may also be given as \
    VLEDGER_<NAME> (e.g. VLEDGER_MAX_CONNECTIONS=8), and every one in the --config file \
    (e.g. max_connections = 8); a flag wins over the variable, which wins over the file."
)]
pub struct ServeSettings {
    /// A TOML config file holding any of the settings below (names as the flags, with `_`).
    #[arg(long, env = "VLEDGER_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Data directory: the RocksDB store lives in DATA/db, the node's key in DATA/keys/node.pem.
    #[arg(long, default_value = "./data")]
    pub data: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// The region this node serves (a-z, 0-9, '-'), e.g. `cq` for Chongqing.
    #[arg(long, default_value = "cq")]
    pub region: RegionId,
    /// The region's display name, recorded at genesis.
    #[arg(long, default_value = "Chongqing Science and Technology Bureau")]
    pub region_name: String,
    /// The checkpoint origin (the log's name); defaults to `vledger.local/<region>`.
    #[arg(long)]
    pub origin: Option<String>,
    /// Public key (standard base64) of the region's first admin, used only at first start.
    #[arg(long, conflicts_with = "demo")]
    pub admin_key: Option<PublicKey>,
    /// Found a demo region on first start: creates DATA/keys/admin.pem and makes it the first admin.
    #[arg(long)]
    pub demo: bool,
    /// A witness to send each checkpoint to, as `<witness verifier key>@<url>`; repeatable (or
    /// `witnesses = [...]` in the config file; no environment variable). The cosigned
    /// checkpoint is served at GET /v1/checkpoint/cosigned.
    #[arg(long = "witness", value_name = "KEY@URL")]
    #[serde(default)]
    pub witnesses: Vec<Witness>,
    /// Another region of the federation, as `<region>=<its node's verifier key>@<its URL>`;
    /// repeatable (or `peers = [...]` in the config file; no environment variable). The node
    /// mirrors and verifies each one's log and adopts it through its own; GET /v1/federation
    /// shows them.
    #[arg(long = "peer", value_name = "REGION=KEY@URL")]
    #[serde(default)]
    pub peers: Vec<FederationPeer>,
    /// Log lines as text, or as JSON objects carrying each request's id.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Longest time from a request's first byte to the end of its headers, in ms; a slower
    /// client's connection is closed.
    #[arg(long, default_value_t = DEFAULT_HEADER_READ_TIMEOUT_MS)]
    pub header_read_timeout_ms: NonZeroU64,
    /// Longest time a connection may wait for its next request, in ms.
    #[arg(long, default_value_t = DEFAULT_IDLE_TIMEOUT_MS)]
    pub idle_timeout_ms: NonZeroU64,
    /// Most connections served at once; more are answered 503 and closed. Keep it below the
    /// process's open-file limit.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: NonZeroUsize,
    /// Most GET /v1/events streams open at once; more are answered 503.
    #[arg(long, default_value_t = DEFAULT_MAX_EVENT_SUBSCRIBERS)]
    pub max_event_subscribers: NonZeroUsize,
}

impl ServeSettings {
    /// The settings from `serve`'s parsed command line, the variables `env` gives and the config
    /// file, over the defaults. The message of an error names each wrong setting and its layer.
    pub fn load(
        matches: &ArgMatches,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Self, String> {
        let command = Self::augment_args(clap::Command::new("serve"));
        let settings: Vec<&clap::Arg> = command
            .get_arguments()
            .filter(|arg| arg.get_id() != "config")
            .collect();
        let mut figment = Figment::new().merge(Layer::given(
            Source::Defaults,
            &settings,
            matches,
            ValueSource::DefaultValue,
        ));
        if let Some(path) = matches.get_one::<PathBuf>("config") {
            std::fs::File::open(path)
                .map_err(|e| format!("cannot read the config file {}: {e}", path.display()))?;
            figment = figment.merge(Toml::file_exact(path));
        }
        let settings: Self = figment
            .merge(Layer::environment(&settings, env))
            .merge(Layer::given(
                Source::Flags,
                &settings,
                matches,
                ValueSource::CommandLine,
            ))
            .extract_lossy()
            .map_err(readable)?;
        if settings.demo && settings.admin_key.is_some() {
            return Err(
                "give either an admin key (--admin-key, VLEDGER_ADMIN_KEY or admin_key) \
                        or --demo, not both"
                    .into(),
            );
        }
        Ok(settings)
    }

    /// The bounds of the node's HTTP connections.
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms.get()),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms.get()),
            max_connections: self.max_connections.get(),
            max_event_subscribers: self.max_event_subscribers.get(),
        }
    }
}

/// Where a layer's values come from; each names its settings as the user wrote them.
#[derive(Clone, Copy)]
enum Source {
    Defaults,
    Environment,
    Flags,
}

/// One layer of settings, keyed by the settings' names.
struct Layer {
    source: Source,
    values: Dict,
    /// A setting's name in this layer (`--witness`, `VLEDGER_REGION`), by its key.
    names: BTreeMap<String, String>,
}

impl Layer {
    /// The values of `settings` that `matches` took from `source`, as given (the flags, or
    /// clap's defaults): parsed into their types only when the layers are merged.
    fn given(
        source: Source,
        settings: &[&clap::Arg],
        matches: &ArgMatches,
        from: ValueSource,
    ) -> Self {
        let mut layer = Self::new(source);
        for arg in settings {
            let key = arg.get_id().as_str();
            if matches.value_source(key) != Some(from) {
                continue;
            }
            let Some(raw) = matches.get_raw(key) else {
                continue;
            };
            let mut texts = raw.map(|v| Value::from(v.to_string_lossy().into_owned()));
            let value = if takes_many(arg) {
                Value::from(texts.collect::<Vec<_>>())
            } else {
                texts.next().expect("a value given has a value")
            };
            let name = arg.get_long().map_or(key.to_string(), |l| format!("--{l}"));
            layer.insert(key, name, value);
        }
        layer
    }

    /// `VLEDGER_<NAME>` of each single-valued setting that `env` holds.
    fn environment(settings: &[&clap::Arg], env: impl Fn(&str) -> Option<OsString>) -> Self {
        let mut layer = Self::new(Source::Environment);
        for arg in settings.iter().filter(|arg| !takes_many(arg)) {
            let key = arg.get_id().as_str();
            let variable = format!("{ENV_PREFIX}{}", key.to_uppercase());
            if let Some(value) = env(&variable) {
                let value = Value::from(value.to_string_lossy().into_owned());
                layer.insert(key, variable, value);
            }
        }
        layer
    }

    fn new(source: Source) -> Self {
        Self {
            source,
            values: Dict::new(),
            names: BTreeMap::new(),
        }
    }

    fn insert(&mut self, key: &str, name: String, value: Value) {
        self.values.insert(key.to_string(), value);
        self.names.insert(key.to_string(), name);
    }
}

fn takes_many(arg: &clap::Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Append)
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        let names = self.names.clone();
        let layer = match self.source {
            Source::Defaults => "the defaults",
            Source::Environment => "the environment",
            Source::Flags => "the command line",
        };
        Metadata::named(layer).interpolater(move |_: &Profile, keys: &[&str]| {
            let key = keys.join(".");
            names.get(&key).cloned().unwrap_or(key)
        })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Map::from([(Profile::Default, self.values.clone())]))
    }
}

/// Each error on a line of its own: the setting as its layer names it, where it came from, and
/// what is wrong with it.
fn readable(errors: figment::Error) -> String {
    errors
        .into_iter()
        .map(|error| {
            let kind = match &error.kind {
                Kind::UnknownField(found, known) => {
                    format!(
                        "unknown setting `{found}`; the settings are {}",
                        known.join(", ")
                    )
                }
                kind => kind.to_string(),
            };
            let Some(metadata) = &error.metadata else {
                return kind;
            };
            let layer = match &metadata.source {
                Some(file) => format!("the config file {file}"),
                None => metadata.name.to_string(),
            };
            if error.path.is_empty() {
                return format!("{kind} (in {layer})");
            }
            let setting = match &metadata.source {
                Some(_) => format!("`{}`", error.path.join(".")),
                None => metadata.interpolate(&Profile::Default, &error.path),
            };
            format!("{setting} (in {layer}): {kind}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `serve`'s settings from these flags and environment variables.
    fn load(flags: &[&str], env: &[(&str, &str)]) -> Result<ServeSettings, String> {
        let command = ServeSettings::augment_args(clap::Command::new("serve"));
        let matches = command
            .try_get_matches_from(std::iter::once("serve").chain(flags.iter().copied()))
            .map_err(|e| e.to_string())?;
        let env: BTreeMap<String, OsString> = env
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        ServeSettings::load(&matches, |name| env.get(name).cloned())
    }

    fn config_file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
        file
    }

    #[test]
    fn flags_win_over_the_environment_which_wins_over_the_file_which_wins_over_defaults() {
        let file = config_file(
            "listen = \"0.0.0.0:9000\"\nregion = \"cd\"\nregion_name = \"Chengdu\"\n\
             log_format = \"json\"\nmax_connections = 8\n",
        );
        let path = file.path().to_str().unwrap();
        let env = [("VLEDGER_REGION", "sc"), ("VLEDGER_REGION_NAME", "2024")];
        let s = load(&["--config", path, "--region", "cq"], &env).unwrap();
        assert_eq!(s.region.as_str(), "cq", "the flag wins");
        assert_eq!(
            s.region_name, "2024",
            "the environment wins over the file, as text"
        );
        assert_eq!(s.listen, "0.0.0.0:9000", "the file wins over the default");
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.data, PathBuf::from("./data"));
        assert_eq!(s.connection_limits().max_connections, 8);
        let s = load(&["--config", path], &env).unwrap();
        assert_eq!(s.region.as_str(), "sc");

        let s = load(&[], &[]).unwrap();
        assert_eq!(s.region.as_str(), "cq");
        assert_eq!(s.region_name, "Chongqing Science and Technology Bureau");
        assert_eq!(s.listen, "127.0.0.1:8080");
        assert_eq!(s.log_format, LogFormat::Text);
        assert!(!s.demo && s.admin_key.is_none() && s.origin.is_none());
        assert!(s.witnesses.is_empty());
        assert_eq!(
            format!("{:?}", s.connection_limits()),
            format!("{:?}", ConnectionLimits::default())
        );
    }

    #[test]
    fn connection_limits_come_from_flags_then_the_environment_then_the_file_then_defaults() {
        let file = config_file(
            "header_read_timeout_ms = 250\nidle_timeout_ms = 500\nmax_connections = 8\n",
        );
        let path = file.path().to_str().unwrap();
        let s = load(
            &["--config", path, "--max-connections", "4"],
            &[("VLEDGER_IDLE_TIMEOUT_MS", "700")],
        )
        .unwrap();
        let limits = s.connection_limits();
        assert_eq!(limits.header_read_timeout, Duration::from_millis(250));
        assert_eq!(limits.idle_timeout, Duration::from_millis(700));
        assert_eq!(limits.max_connections, 4);
        assert_eq!(
            limits.max_event_subscribers,
            ConnectionLimits::default().max_event_subscribers
        );
    }

    #[test]
    fn a_wrong_value_is_named_with_its_layer() {
        let file = config_file("max_connections = 0\n");
        let path = file.path().to_str().unwrap();
        let e = load(&["--config", path], &[]).unwrap_err();
        assert!(e.contains("`max_connections`"), "{e}");
        assert!(e.contains(path), "{e}");

        let e = load(&[], &[("VLEDGER_REGION", "Chongqing!")]).unwrap_err();
        assert!(e.starts_with("VLEDGER_REGION (in the environment)"), "{e}");
        assert!(e.contains("Chongqing!"), "{e}");
        let e = load(&[], &[("VLEDGER_ADMIN_KEY", "AAAA")]).unwrap_err();
        assert!(
            e.starts_with("VLEDGER_ADMIN_KEY (in the environment)"),
            "{e}"
        );
        let e = load(&[], &[("VLEDGER_MAX_EVENT_SUBSCRIBERS", "many")]).unwrap_err();
        assert!(e.starts_with("VLEDGER_MAX_EVENT_SUBSCRIBERS"), "{e}");

        let e = load(&["--region", "Chongqing!"], &[]).unwrap_err();
        assert!(e.contains("--region"), "{e}");
        let e = load(&["--witness", "no-at-sign"], &[]).unwrap_err();
        assert!(e.contains("--witness"), "{e}");
        let file = config_file("witnesses = [\"no-at-sign\"]\n");
        let e = load(&["--config", file.path().to_str().unwrap()], &[]).unwrap_err();
        assert!(
            e.contains("`witnesses.0`") && e.contains("no-at-sign"),
            "{e}"
        );
    }

    #[test]
    fn unknown_settings_and_files_are_named() {
        let file = config_file("lisen = \"x\"\n");
        let e = load(&["--config", file.path().to_str().unwrap()], &[]).unwrap_err();
        assert!(e.contains("lisen"), "{e}");
        let file = config_file("log_format = \"xml\"\n");
        let e = load(&["--config", file.path().to_str().unwrap()], &[]).unwrap_err();
        assert!(e.contains("xml"), "{e}");
        let e = load(&["--config", "/nonexistent/vledger.toml"], &[]).unwrap_err();
        assert!(
            e.contains("cannot read the config file /nonexistent"),
            "{e}"
        );
        // Other programs' VLEDGER_* variables are no settings of the node.
        assert!(load(&[], &[("VLEDGER_URL", "http://x"), ("VLEDGER_BIN", "b")]).is_ok());
    }

    #[test]
    fn demo_and_an_admin_key_exclude_each_other() {
        let file = config_file("demo = true\n");
        let path = file.path().to_str().unwrap();
        let key = vledger_tlog::keys::SigningKey::generate(&mut rand::rngs::OsRng)
            .public_key()
            .to_base64();
        assert!(load(&["--config", path], &[("VLEDGER_ADMIN_KEY", &key)]).is_err());
        assert!(load(&["--demo", "--admin-key", &key], &[]).is_err());
        let s = load(&["--config", path], &[]).unwrap();
        assert!(s.demo);
        let s = load(&["--admin-key", &key], &[]).unwrap();
        assert_eq!(s.admin_key.unwrap().to_base64(), key);
    }
}
