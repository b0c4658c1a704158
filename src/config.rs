//! `vledger serve`'s settings: command-line flags, then `VLEDGER_*` environment variables, then
//! a TOML config file (`--config`), then defaults — the first that gives a value wins.
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

use std::path::{Path, PathBuf};

use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;
use vledger_api::ConnectionLimits;

/// How the node writes its logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line, with the request id of each HTTP request.
    Json,
}

/// The settings a config file may hold; every one is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data: Option<PathBuf>,
    pub listen: Option<String>,
    pub region: Option<String>,
    pub region_name: Option<String>,
    pub origin: Option<String>,
    pub admin_key: Option<String>,
    pub demo: Option<bool>,
    pub log_format: Option<LogFormat>,
    /// Witnesses, each `<witness verifier key>@<url>`.
    pub witnesses: Option<Vec<String>>,
    pub header_read_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_event_subscribers: Option<usize>,
}

impl FileConfig {
    /// Reads a config file; the message names the file and the wrong setting.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("config file {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))
    }
}

/// The node's settings once flags, environment, file and defaults are merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeSettings {
    pub data: PathBuf,
    pub listen: String,
    pub region: String,
    pub region_name: String,
    pub origin: Option<String>,
    pub admin_key: Option<String>,
    pub demo: bool,
    pub log_format: LogFormat,
    pub witnesses: Vec<String>,
    /// The bounds of the node's HTTP connections.
    pub connection_limits: ConnectionLimits,
}

/// What flags and environment gave (clap fills these from both).
#[derive(Debug, Default)]
pub struct GivenSettings {
    pub data: Option<PathBuf>,
    pub listen: Option<String>,
    pub region: Option<String>,
    pub region_name: Option<String>,
    pub origin: Option<String>,
    pub admin_key: Option<String>,
    pub demo: bool,
    pub log_format: Option<LogFormat>,
    pub witnesses: Vec<String>,
    pub header_read_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_event_subscribers: Option<usize>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_REGION: &str = "cq";
pub const DEFAULT_REGION_NAME: &str = "Chongqing Science and Technology Bureau";

impl ServeSettings {
    pub fn merge(given: GivenSettings, file: FileConfig) -> Result<Self> {
        let settings = Self {
            data: given.data.or(file.data).unwrap_or_else(|| "./data".into()),
            listen: given
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.into()),
            region: given
                .region
                .or(file.region)
                .unwrap_or_else(|| DEFAULT_REGION.into()),
            region_name: given
                .region_name
                .or(file.region_name)
                .unwrap_or_else(|| DEFAULT_REGION_NAME.into()),
            origin: given.origin.or(file.origin),
            admin_key: given.admin_key.or(file.admin_key),
            demo: given.demo || file.demo.unwrap_or(false),
            log_format: given
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
            witnesses: if given.witnesses.is_empty() {
                file.witnesses.unwrap_or_default()
            } else {
                given.witnesses
            },
            connection_limits: {
                let default = ConnectionLimits::default();
                let ms = |given: Option<u64>, file: Option<u64>, default: Duration| {
                    given.or(file).map_or(default, Duration::from_millis)
                };
                ConnectionLimits {
                    header_read_timeout: ms(
                        given.header_read_timeout_ms,
                        file.header_read_timeout_ms,
                        default.header_read_timeout,
                    ),
                    idle_timeout: ms(
                        given.idle_timeout_ms,
                        file.idle_timeout_ms,
                        default.idle_timeout,
                    ),
                    max_connections: given
                        .max_connections
                        .or(file.max_connections)
                        .unwrap_or(default.max_connections),
                    max_event_subscribers: given
                        .max_event_subscribers
                        .or(file.max_event_subscribers)
                        .unwrap_or(default.max_event_subscribers),
                }
            },
        };
        settings
            .connection_limits
            .check()
            .map_err(|e| anyhow::anyhow!("connection limits: {e}"))?;
        if settings.demo && settings.admin_key.is_some() {
            anyhow::bail!(
                "give either an admin key (--admin-key, VLEDGER_ADMIN_KEY or admin_key) or --demo, not both"
            );
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_environment_win_over_the_file_which_wins_over_defaults() {
        let file = FileConfig::parse(
            "listen = \"0.0.0.0:9000\"\nregion = \"cd\"\nlog_format = \"json\"\n",
        )
        .unwrap();
        let given = GivenSettings {
            region: Some("cq".into()),
            ..Default::default()
        };
        let s = ServeSettings::merge(given, file).unwrap();
        assert_eq!(s.region, "cq");
        assert_eq!(s.listen, "0.0.0.0:9000");
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.data, PathBuf::from("./data"));
        assert_eq!(s.region_name, DEFAULT_REGION_NAME);
    }

    #[test]
    fn unknown_settings_and_bad_values_are_named() {
        let e = FileConfig::parse("lisen = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("lisen"), "{e}");
        let e = FileConfig::parse("log_format = \"xml\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("xml"), "{e}");
    }

    #[test]
    fn connection_limits_come_from_flags_then_the_file_then_defaults() {
        let file = FileConfig::parse(
            "header_read_timeout_ms = 250\nidle_timeout_ms = 500\nmax_connections = 8\n",
        )
        .unwrap();
        let given = GivenSettings {
            max_connections: Some(4),
            ..Default::default()
        };
        let limits = ServeSettings::merge(given, file).unwrap().connection_limits;
        assert_eq!(limits.header_read_timeout, Duration::from_millis(250));
        assert_eq!(limits.idle_timeout, Duration::from_millis(500));
        assert_eq!(limits.max_connections, 4);
        assert_eq!(
            limits.max_event_subscribers,
            ConnectionLimits::default().max_event_subscribers
        );
        let e = ServeSettings::merge(
            GivenSettings::default(),
            FileConfig::parse("max_connections = 0\n").unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("at least 1"), "{e}");
    }

    #[test]
    fn demo_and_an_admin_key_exclude_each_other() {
        let file = FileConfig::parse("demo = true\n").unwrap();
        let given = GivenSettings {
            admin_key: Some("k".into()),
            ..Default::default()
        };
        assert!(ServeSettings::merge(given, file).is_err());
    }
}
