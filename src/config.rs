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
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

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
        };
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
    fn demo_and_an_admin_key_exclude_each_other() {
        let file = FileConfig::parse("demo = true\n").unwrap();
        let given = GivenSettings {
            admin_key: Some("k".into()),
            ..Default::default()
        };
        assert!(ServeSettings::merge(given, file).is_err());
    }
}
