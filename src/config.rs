//! A ledger's one configuration file (PROTOCOL §12): `[audit]` thresholds, `[valuation]`
//! assumptions and `[server]` bounds, every value a default that the file may override,
//! and `[log]`, where the log's checkpoint key is (PROTOCOL §11). `config_b3` names the
//! configuration an answer was computed under (PROTOCOL §9 "Citable"); the server's bounds
//! and where the key is change no answer, so they are not part of it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::audit::AuditConfig;
use crate::limits;
use crate::log::cosignature::CosignatureVerifier;
use crate::report::assumptions::{Assumption, AssumptionError, Overrides};

/// What a configuration file says.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Config {
    pub audit: AuditConfig,
    /// The `[valuation]` table: only the assumptions the file sets.
    pub valuation: Overrides,
    pub server: ServerConfig,
    pub log: LogConfig,
    /// The `[[witness]]` tables: the witnesses asked to cosign each new checkpoint
    /// (PROTOCOL §12.2). They change no answer, so they are not serialised.
    #[serde(skip)]
    pub witnesses: Vec<WitnessConfig>,
}

/// One `[[witness]]` table, read: where the witness takes checkpoints and the key its
/// cosignatures must verify under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessConfig {
    /// The witness's submission prefix, without a trailing '/': the ledger POSTs to
    /// `<url>/add-checkpoint`.
    pub url: String,
    pub verifier: CosignatureVerifier,
}

/// A `[[witness]]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WitnessTable {
    url: String,
    vkey: String,
}

impl WitnessTable {
    fn read(self, n: usize) -> Result<WitnessConfig, ConfigError> {
        let wrong = |reason: String| ConfigError::Witness { n, reason };
        let url = self.url.trim_end_matches('/');
        let Some(host) = url.strip_prefix("http://") else {
            return Err(wrong(format!(
                "url {:?} must start with http:// (put a TLS proxy in front of a witness reached over https)",
                self.url
            )));
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(wrong(format!("url {:?} names no host", self.url)));
        }
        let verifier =
            CosignatureVerifier::parse(&self.vkey).map_err(|e| wrong(format!("vkey: {e}")))?;
        Ok(WitnessConfig {
            url: url.to_string(),
            verifier,
        })
    }
}

/// The `[server]` table (PROTOCOL §10): what a server facing the open internet allows each
/// client. Every key names its unit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// A request's headers must arrive within this, from its first byte.
    pub header_timeout_ms: u64,
    /// A request's body must arrive within this, from the end of its headers.
    pub body_timeout_ms: u64,
    /// A connection on which nothing moves for this long is closed.
    pub idle_timeout_ms: u64,
    /// A handler that takes longer is abandoned (408).
    pub request_timeout_ms: u64,
    /// Open connections; more wait in the listen backlog.
    pub max_connections: usize,
    /// Requests handled at once; more are answered 503.
    pub max_concurrent_requests: usize,
    /// Longest request target (414).
    pub max_uri_bytes: usize,
    /// Most header bytes in one request (431).
    pub max_header_bytes: usize,
    /// Answers held in memory for all clients together; more are answered 503.
    pub max_buffered_answer_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            header_timeout_ms: limits::DEFAULT_HEADER_TIMEOUT_MS,
            body_timeout_ms: limits::DEFAULT_BODY_TIMEOUT_MS,
            idle_timeout_ms: limits::DEFAULT_IDLE_TIMEOUT_MS,
            request_timeout_ms: limits::DEFAULT_REQUEST_TIMEOUT_MS,
            max_connections: limits::DEFAULT_MAX_CONNECTIONS,
            max_concurrent_requests: limits::DEFAULT_MAX_CONCURRENT_REQUESTS,
            max_uri_bytes: limits::DEFAULT_MAX_URI_BYTES,
            max_header_bytes: limits::DEFAULT_MAX_HEADER_BYTES,
            max_buffered_answer_bytes: limits::DEFAULT_MAX_BUFFERED_ANSWER_BYTES,
        }
    }
}

impl ServerConfig {
    /// Every value within its range; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        let timeouts = [
            ("header_timeout_ms", self.header_timeout_ms),
            ("body_timeout_ms", self.body_timeout_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("request_timeout_ms", self.request_timeout_ms),
        ];
        for (key, value) in timeouts {
            in_range(key, value, 1, limits::MAX_CONFIG_TIMEOUT_MS)?;
        }
        let sizes = [
            (
                "max_connections",
                self.max_connections,
                1,
                limits::MAX_CONFIG_CONNECTIONS,
            ),
            (
                "max_concurrent_requests",
                self.max_concurrent_requests,
                1,
                limits::MAX_CONFIG_CONCURRENT_REQUESTS,
            ),
            (
                "max_uri_bytes",
                self.max_uri_bytes,
                limits::MIN_CONFIG_URI_BYTES,
                limits::MAX_CONFIG_URI_BYTES,
            ),
            (
                "max_header_bytes",
                self.max_header_bytes,
                limits::MIN_CONFIG_HEADER_BYTES,
                limits::MAX_CONFIG_HEADER_BYTES,
            ),
            // Room for at least one full page, or a long list could never be read.
            (
                "max_buffered_answer_bytes",
                self.max_buffered_answer_bytes,
                limits::MAX_PAGE_BYTES,
                limits::MAX_CONFIG_BUFFERED_ANSWER_BYTES,
            ),
        ];
        for (key, value, min, max) in sizes {
            in_range(key, value, min, max)?;
        }
        Ok(())
    }
}

/// Checks a configured value against its bounds; the error names the key.
pub(crate) fn in_range<T: PartialOrd + std::fmt::Display>(
    key: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), String> {
    if value < min || value > max {
        return Err(format!("{key} must be {min} to {max}, not {value}"));
    }
    Ok(())
}

/// The `[log]` table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// The PEM file of the key that signs the ledger's checkpoints (PROTOCOL §11), outside
    /// the data directory. A relative path is relative to the configuration file's
    /// directory (the CLI resolves it). `--log-key` overrides it.
    pub key: Option<PathBuf>,
}

impl LogConfig {
    fn validate(&self) -> Result<(), String> {
        match &self.key {
            Some(path) if path.as_os_str().is_empty() => {
                Err("key is empty: give the path of the log key's PEM file".into())
            }
            _ => Ok(()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config: {0}")]
    Toml(String),
    #[error("config: [audit] {0}")]
    Audit(String),
    #[error("config: [valuation] {0}")]
    Valuation(#[from] AssumptionError),
    #[error("config: [server] {0}")]
    Server(String),
    #[error("config: [log] {0}")]
    Log(String),
    #[error(
        "config: `{0}` stands outside any table: this is a thresholds file of the old flat format. \
         Put `[audit]` on a line of its own at the top, and rename each `[reference_prices.MODEL]` \
         table to `[audit.reference_prices.MODEL]` (`dcledger audit --print-config` prints the whole \
         file with every default)"
    )]
    FlatThresholds(String),
    #[error("config: [[witness]] number {n}: {reason}")]
    Witness { n: usize, reason: String },
    #[error(
        "config: {0} witnesses are listed; at most {max} may be",
        max = limits::MAX_WITNESSES
    )]
    TooManyWitnesses(usize),
}

/// The file as TOML sees it, before each table is judged.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    audit: Option<AuditConfig>,
    #[serde(default)]
    valuation: Option<toml::Table>,
    #[serde(default)]
    server: Option<ServerConfig>,
    log: Option<LogConfig>,
    #[serde(default)]
    witness: Vec<WitnessTable>,
}

impl Config {
    /// Parses a configuration file; absent keys keep their defaults, unknown keys and
    /// tables are errors that name them.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Toml(e.to_string()))?;
        for (key, value) in &table {
            match key.as_str() {
                "audit" | "valuation" | "server" | "log" | "witness" => {}
                _ if !value.is_table() || AuditConfig::is_field(key) => {
                    return Err(ConfigError::FlatThresholds(key.clone()));
                }
                _ => {}
            }
        }
        let file: File = toml::from_str(text).map_err(|e| ConfigError::Toml(e.to_string()))?;
        let audit = file.audit.unwrap_or_default();
        audit.validate().map_err(ConfigError::Audit)?;
        let mut valuation = Overrides::default();
        for (name, value) in file.valuation.unwrap_or_default() {
            valuation.set_toml(&name, &value)?;
        }
        let server = file.server.unwrap_or_default();
        server.validate().map_err(ConfigError::Server)?;
        let log = file.log.unwrap_or_default();
        log.validate().map_err(ConfigError::Log)?;
        if file.witness.len() > limits::MAX_WITNESSES {
            return Err(ConfigError::TooManyWitnesses(file.witness.len()));
        }
        let witnesses = file
            .witness
            .into_iter()
            .enumerate()
            .map(|(i, w)| w.read(i + 1))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Config {
            audit,
            valuation,
            server,
            log,
            witnesses,
        })
    }

    /// BLAKE3 (hex) of the configuration in force: the audit thresholds and the value
    /// of every valuation assumption after `query` overrides this file's, which override
    /// the defaults; the compact JSON of `{"audit", "valuation", "rent"}` with fields in
    /// declaration order and maps sorted. Equal values give equal digests, however they
    /// were spelled or wherever they came from.
    pub fn b3(&self, query: &Overrides) -> String {
        #[derive(Serialize)]
        struct InForce<'a> {
            audit: &'a AuditConfig,
            valuation: BTreeMap<&'static str, u64>,
            rent: BTreeMap<&'a str, u64>,
        }
        let file = &self.valuation;
        let in_force = InForce {
            audit: &self.audit,
            valuation: Assumption::ALL
                .iter()
                .map(|a| {
                    let value = query.get(*a).or(file.get(*a)).unwrap_or(a.default_value());
                    (a.name(), value)
                })
                .collect(),
            rent: file
                .rent_models()
                .chain(query.rent_models())
                .filter_map(|m| Some((m, query.rent(m).or(file.rent(m))?)))
                .collect(),
        };
        let mut hasher = blake3::Hasher::new();
        // Serialising plain structs and sorted maps into a hasher cannot fail.
        serde_json::to_writer(&mut hasher, &in_force)
            .unwrap_or_else(|e| unreachable!("config serialises: {e}"));
        hasher.finalize().to_hex().to_string()
    }
}

/// The whole file with every default, commented, ready to edit (`--print-config`).
pub const DEFAULT_TOML: &str = include_str!("config.default.toml");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_defaults_parse_to_the_defaults() {
        let c = Config::from_toml(DEFAULT_TOML).unwrap();
        assert_eq!(c.audit, AuditConfig::default());
        for a in Assumption::ALL {
            assert_eq!(c.valuation.get(*a), Some(a.default_value()), "{}", a.name());
        }
        assert_eq!(c.valuation.rent_models().count(), 0);
        assert_eq!(c.server, ServerConfig::default());
        assert_eq!(c.log, LogConfig::default());
    }

    #[test]
    fn overrides_and_errors_name_what_is_wrong() {
        let c = Config::from_toml("[audit]\nidle_utilization_pct = 40\n").unwrap();
        assert_eq!(c.audit.idle_utilization_pct, 40);
        assert_eq!(c.audit.window_months, 6);
        let c = Config::from_toml("[valuation]\nhaircut_bp = 5000\nrent.H100 = 900000\n").unwrap();
        assert_eq!(c.valuation.get(Assumption::HaircutBp), Some(5000));
        assert_eq!(c.valuation.rent("H100"), Some(900_000));
        let c = Config::from_toml("[valuation.rent]\nA100 = 7\n").unwrap();
        assert_eq!(c.valuation.rent("A100"), Some(7));
        let c = Config::from_toml("[server]\nidle_timeout_ms = 2500\n").unwrap();
        assert_eq!(c.server.idle_timeout_ms, 2500);
        assert_eq!(c.server.max_connections, limits::DEFAULT_MAX_CONNECTIONS);
        let c = Config::from_toml("[log]\nkey = \"/etc/dcledger/log.pem\"\n").unwrap();
        assert_eq!(c.log.key, Some(PathBuf::from("/etc/dcledger/log.pem")));
        assert_eq!(
            c.b3(&Overrides::default()),
            Config::default().b3(&Overrides::default())
        );
        for (text, names) in [
            ("[log]\nkey = \"\"\n", "[log] key is empty"),
            ("[log]\nkey = 3\n", "key"),
            ("[log]\npath = \"k.pem\"\n", "path"),
            ("[audit]\nidle_utilisation = 40\n", "idle_utilisation"),
            ("[audit]\nwindow_months = 0\n", "window_months"),
            ("idle_utilization_pct = 40\n", "old flat format"),
            ("[reference_prices.H100]\n2023 = 1\n", "old flat format"),
            ("[server]\nidle_s = 3\n", "idle_s"),
            ("[server]\nidle_timeout_ms = 0\n", "idle_timeout_ms"),
            ("[server]\nheader_timeout_ms = -1\n", "header_timeout_ms"),
            ("[server]\nmax_connections = 0\n", "max_connections"),
            ("[server]\nmax_uri_bytes = 100000\n", "max_uri_bytes"),
            ("[server]\nmax_header_bytes = 10\n", "max_header_bytes"),
            (
                "[server]\nmax_buffered_answer_bytes = 1000\n",
                "max_buffered_answer_bytes",
            ),
            ("[server]\nbody_timeout_ms = \"30s\"\n", "body_timeout_ms"),
            ("[witness]\n", "witness"),
            (
                "[[witness]]\nurl = \"https://w.example\"\nvkey = \"w+00000000+BA==\"\n",
                "must start with http://",
            ),
            (
                "[[witness]]\nurl = \"http://w.example\"\nvkey = \"w+00000000+BA==\"\n",
                "[[witness]] number 1: vkey",
            ),
            ("[[witness]]\nurl = \"http://w.example\"\n", "vkey"),
            ("[valuation]\nhaircut_bp = 10001\n", "haircut_bp"),
            ("[valuation]\ntariff = 1\n", "tariff"),
            ("[valuation]\nlife_months = -1\n", "life_months"),
            ("[valuation]\nlife_months = \"60\"\n", "life_months"),
            ("[valuation]\nrent.H100 = 9007199254740992\n", "rent.H100"),
            ("[valuations]\n", "valuations"),
        ] {
            let err = Config::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(names), "{text:?} gave {err:?}");
        }
    }

    #[test]
    fn the_digest_follows_the_values_not_their_spelling() {
        let a = Config::from_toml("[valuation]\nrent.H100 = 1\n").unwrap();
        let b = Config::from_toml("[valuation.rent]\nH100 = 1\n").unwrap();
        let none = Overrides::default();
        assert_eq!(a.b3(&none), b.b3(&none));
        assert_ne!(a.b3(&none), Config::default().b3(&none));
        let mut query = Overrides::default();
        query.set_text("tariff_minor_per_kwh", "60").unwrap();
        assert_ne!(a.b3(&query), a.b3(&none));
        assert_eq!(a.b3(&none).len(), 64);
        // A value equal to the default, from wherever, is the same configuration.
        let mut same = Overrides::default();
        same.set_text("haircut_bp", "4000").unwrap();
        assert_eq!(Config::default().b3(&same), Config::default().b3(&none));
        let file = Config::from_toml("[valuation]\nhaircut_bp = 4000\n").unwrap();
        assert_eq!(file.b3(&none), Config::default().b3(&none));
    }
}
