//! The `dcledger` command line: parses arguments and calls the library. All logic lives
//! in the library; this file only reads files, prints and picks exit codes.

use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, Parser, Subcommand};
use serde_json::Value;

use dcledger::config::{self, Config};
use dcledger::dates::Month;
use dcledger::entry::{self, EntryDraft, Kind};
use dcledger::ledger::{self, Ledger, Unlocked};
use dcledger::log::{checkpoint, cosignature};
use dcledger::report::assumptions::Overrides;
use dcledger::{
    audit, bulk, client, dates, json, keys, monitor, proofcheck, report, server, synthetic, views,
};
use ed25519_dalek::SigningKey;

#[derive(Parser)]
#[command(
    name = "dcledger",
    version,
    about = "Append-only signed ledger of AI data-center funding, hardware, power and use"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make an Ed25519 key (PKCS#8 PEM, mode 0600) and print its public key hex.
    Keygen {
        /// Where to write the private key; an existing file is never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a body and print the envelope as one JSON line.
    Sign {
        /// The signer's private key (PKCS#8 PEM, as `keygen` writes it).
        #[arg(long)]
        key: PathBuf,
        /// The origin of the ledger the entry is for (the first line of its checkpoint):
        /// the signature is valid in that ledger only.
        #[arg(long)]
        origin: String,
        /// The record kind, e.g. `procurement` or `facility.register` (PROTOCOL.md §7).
        #[arg(long)]
        kind: String,
        /// The signer's sequence number for this entry: 1 for its first, then one more
        /// for each entry it signs in this ledger.
        #[arg(long)]
        seq: u64,
        /// Signing time, RFC 3339 UTC with whole seconds (default: now).
        #[arg(long)]
        ts: Option<String>,
        /// The body JSON file, or - for standard input.
        body: String,
    },
    /// Create a ledger: entry 0 (ledger.genesis) and the first checkpoint.
    Init {
        /// The ledger's data directory.
        #[arg(long)]
        data: PathBuf,
        /// The ledger's origin: a name for it, unique among ledgers (a domain and path,
        /// such as `registry.example/henan`), on the first line of every checkpoint.
        #[arg(long)]
        origin: String,
        /// Human name of the ledger (default: the origin).
        #[arg(long)]
        name: Option<String>,
        /// The registry authority's private key: it signs entry 0 and registers the
        /// organisations and keys that may sign after it.
        #[arg(long)]
        authority_key: PathBuf,
        /// The key that signs checkpoints (default: [log] key of --config). It is not
        /// copied into the data directory: keep it elsewhere and give it to every command
        /// that writes (serve, append, reindex).
        #[arg(long)]
        log_key: Option<PathBuf>,
        /// The configuration file (TOML): its [log] key, as the writers read it later.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Append NDJSON envelopes (one per line) in all-or-nothing batches of up to 1,000.
    Append {
        /// The ledger's data directory.
        #[arg(long)]
        data: PathBuf,
        /// The key that signs the ledger's checkpoints (default: [log] key of --config).
        #[arg(long)]
        log_key: Option<PathBuf>,
        /// The configuration file (TOML): its [log] key, and the [[witness]]es asked to
        /// cosign the checkpoint once the entries are durable.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The NDJSON file, or - for standard input.
        input: String,
        /// After each durable batch, print a JSON line {"accepted", "present",
        /// "checkpoint"} to standard error: an acknowledgement a supervising process can
        /// rely on (`present` counts entries the ledger held already, PROTOCOL §3).
        #[arg(long)]
        report_batches: bool,
    },
    /// Print one entry as `GET /v1/entries/{index}` returns it.
    Get {
        /// The ledger's data directory.
        #[arg(long)]
        data: PathBuf,
        /// The entry's index in the ledger (0 is the genesis entry).
        index: u64,
    },
    /// Print the latest signed checkpoint.
    Checkpoint {
        /// The ledger's data directory.
        #[arg(long)]
        data: PathBuf,
    },
    /// Write the ledger as static files any web server, object store or CDN can serve.
    Export {
        #[command(subcommand)]
        export: ExportCommand,
    },
    /// Print the log's verifier key string (what verifiers pin).
    VerifierKey {
        /// The ledger's data directory.
        #[arg(long)]
        data: PathBuf,
    },
    /// Print an inclusion or consistency proof.
    Proof {
        #[command(subcommand)]
        proof: ProofCommand,
    },
    /// Re-check the whole ledger offline; exits non-zero naming the first bad entry.
    Verify {
        /// The ledger's data directory.
        #[arg(long)]
        data: PathBuf,
    },
    /// Check a proof with only a checkpoint, the verifier key and the leaf.
    VerifyProof {
        /// The signed checkpoint note.
        #[arg(long)]
        checkpoint: PathBuf,
        /// The log's verifier key string, `<name>+<key id>+<key>`.
        #[arg(long)]
        key: String,
        /// For an inclusion proof: the entry (`dcledger get` output) or the leaf JSON.
        #[arg(long, required_unless_present = "old_checkpoint")]
        entry: Option<PathBuf>,
        /// For a consistency proof: the older checkpoint note.
        #[arg(long, conflicts_with = "entry")]
        old_checkpoint: Option<PathBuf>,
        /// The proof JSON (`dcledger proof` output).
        #[arg(long)]
        proof: PathBuf,
    },
    /// Check a checkpoint note: the log's signature and a quorum of witness
    /// cosignatures (PROTOCOL §12.2); exits non-zero saying what is missing.
    VerifyCheckpoint {
        /// The checkpoint note, as `GET /checkpoint` serves it, or - for standard input.
        file: String,
        #[command(flatten)]
        trusted: TrustedKeys,
    },
    /// Follow a ledger from outside, over its tiles (PROTOCOL §12.2): check the new
    /// checkpoint against the last one seen and every leaf added since; exits non-zero
    /// naming what is inconsistent.
    Monitor {
        /// The ledger's tiles prefix (http://): `<URL>/checkpoint`, `<URL>/tile/...`.
        url: String,
        #[command(flatten)]
        trusted: TrustedKeys,
        /// The monitor's own directory: what the last good run checked (created if
        /// missing; empty means check everything from leaf 0).
        #[arg(long)]
        state: PathBuf,
    },
    /// Run a witness (C2SP tlog-witness) for other ledgers.
    Witness {
        #[command(subcommand)]
        witness: WitnessCommand,
    },
    /// Serve the HTTP API (PROTOCOL §10) until SIGTERM or Ctrl-C.
    Serve {
        /// The ledger's data directory.
        #[arg(long)]
        data: PathBuf,
        /// The address to listen on, HOST:PORT (port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// The key that signs the ledger's checkpoints (default: [log] key of --config).
        #[arg(long)]
        log_key: Option<PathBuf>,
        /// The configuration file (TOML: [log], [audit], [valuation], [server] bounds; see
        /// `audit --print-config`).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Submit envelopes to a server, or sign bodies on the fly with --key and --kind.
    Submit {
        /// The server's base URL, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        server: String,
        /// Sign each line of the input as a body with this key (seq from the server, and
        /// the origin the signatures are made for from its checkpoint).
        #[arg(long, requires = "kind")]
        key: Option<PathBuf>,
        /// With --key: the record kind of every body of the input.
        #[arg(long, requires = "key")]
        kind: Option<String>,
        /// With --key: the origin the entries are meant for; refuse to sign if the
        /// server's checkpoint names another ledger.
        #[arg(long, requires = "key")]
        origin: Option<String>,
        /// NDJSON (envelopes, or bodies with --key), or - for standard input.
        input: String,
    },
    /// A fresh ledger with the demo world, audited and served: the place to start.
    Demo {
        /// Where to create the ledger (default: a new directory under the system temp dir).
        #[arg(long)]
        data: Option<PathBuf>,
        /// The address to listen on, HOST:PORT (port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
    },
    /// Generate a deterministic synthetic world: keys, signed entries, ground-truth labels.
    Gen {
        /// How many facilities the world has.
        #[arg(long, default_value_t = 40)]
        facilities: usize,
        /// How many months of reports each facility files.
        #[arg(long, default_value_t = 27)]
        months: u32,
        /// The random seed: the same seed and options give the same world, byte for byte.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// First month, YYYY-MM.
        #[arg(long, default_value = "2023-01")]
        start: String,
        /// Percentage of facilities with a planted anomaly.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u8).range(0..=100))]
        anomaly_rate: u8,
        /// The demo world's story (a Henan voucher site, western power resellers, land
        /// banking, a lot pledged twice).
        #[arg(long)]
        demo: bool,
        /// The origin of the ledger the world is signed for (`init --origin`).
        #[arg(long, default_value = synthetic::ORIGIN)]
        origin: String,
        /// A new or empty directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Run the audit rules (PROTOCOL §8) and print the findings.
    Audit {
        /// The ledger's data directory.
        #[arg(long, required_unless_present = "print_config")]
        data: Option<PathBuf>,
        /// The month to audit as of, YYYY-MM (default: the latest report period).
        #[arg(long)]
        as_of: Option<String>,
        /// The configuration file (TOML: [audit], [valuation]; see --print-config).
        #[arg(long)]
        config: Option<PathBuf>,
        /// How to print: a table to read, or JSON or CSV for programs.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Only this rule.
        #[arg(long)]
        rule: Option<String>,
        /// Only this facility.
        #[arg(long)]
        facility: Option<String>,
        /// Only findings at least this severe: low, medium, high, critical.
        #[arg(long)]
        min_severity: Option<String>,
        /// Print the whole configuration file with every default, commented, and exit.
        #[arg(long)]
        print_config: bool,
    },
    /// Region reports and valuations (PROTOCOL §9) as of a month.
    Report {
        #[command(subcommand)]
        report: ReportCommand,
    },
    /// Print a shell completion script: `dcledger completions bash > /etc/bash_completion.d/dcledger`,
    /// or for zsh into a directory on `$fpath` as `_dcledger`, or for fish into
    /// `~/.config/fish/completions/dcledger.fish`.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Delete derived state and rebuild it from the segment files.
    Reindex {
        /// The ledger's data directory.
        #[arg(long)]
        data: PathBuf,
        /// Trust the segments' checksums and the checks each entry passed when it was
        /// accepted, once the segments give the root of the last signed checkpoint:
        /// about twice as fast. Without it every signature is checked again.
        #[arg(long)]
        trust: bool,
        /// The key that signs the ledger's checkpoints (default: [log] key of --config).
        #[arg(long)]
        log_key: Option<PathBuf>,
        /// The configuration file (TOML; its [log] key is read).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// The keys a reader of checkpoints trusts (`verify-checkpoint`, `monitor`).
#[derive(clap::Args)]
struct TrustedKeys {
    /// The log's verifier key string, `<origin>+<key id>+<key>`.
    #[arg(long)]
    vkey: String,
    /// A trusted witness's verifier key (signature type 0x04); repeat for each.
    #[arg(long = "witness", value_name = "VKEY")]
    witnesses: Vec<String>,
    /// How many of the given witnesses must have cosigned (default: all of them).
    #[arg(long)]
    quorum: Option<usize>,
}

impl TrustedKeys {
    /// The log's key, the witnesses' keys, and how many witnesses must have cosigned
    /// (default: all given).
    fn parse(
        &self,
    ) -> Result<(
        checkpoint::NoteVerifier,
        Vec<cosignature::CosignatureVerifier>,
        usize,
    )> {
        let log = checkpoint::NoteVerifier::parse(&self.vkey).context("--vkey")?;
        let witnesses = self
            .witnesses
            .iter()
            .map(|w| {
                cosignature::CosignatureVerifier::parse(w).with_context(|| format!("--witness {w}"))
            })
            .collect::<Result<Vec<_>>>()?;
        let quorum = self.quorum.unwrap_or(witnesses.len());
        if quorum > witnesses.len() {
            bail!(
                "--quorum {quorum} is more than the {} witnesses given",
                witnesses.len()
            );
        }
        Ok((log, witnesses, quorum))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Table,
    Json,
    Csv,
}

#[derive(Subcommand)]
enum ReportCommand {
    /// Per province and national: facilities, GPUs, utilization, idle GPUs, subsidies,
    /// power resold, findings.
    Regions {
        /// The ledger's data directory.
        #[arg(long)]
        data: PathBuf,
        /// Only this province (or `national`).
        #[arg(long)]
        province: Option<String>,
        /// The month to report as of, YYYY-MM (default: the latest report period).
        #[arg(long)]
        as_of: Option<String>,
        /// The configuration file (TOML: [audit], [valuation]).
        #[arg(long)]
        config: Option<PathBuf>,
        /// How to print: a table to read, or JSON or CSV for programs.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// What a facility earns, costs and is worth, and what is owed against it.
    Valuation {
        /// The ledger's data directory.
        #[arg(long)]
        data: PathBuf,
        /// The facility to value.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        facility: Option<String>,
        /// Value every facility in the report, lowest equity value first.
        #[arg(long)]
        all: bool,
        /// The month to value as of, YYYY-MM (default: the latest report period).
        #[arg(long)]
        as_of: Option<String>,
        /// An assumption for this valuation, NAME=VALUE (e.g. tariff_minor_per_kwh=60).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// A model's monthly rent per GPU in minor units, MODEL=VALUE (e.g. H100=937500).
        #[arg(long = "rent", value_name = "MODEL=VALUE")]
        rent: Vec<String>,
        /// The configuration file (TOML: [audit], [valuation]).
        #[arg(long)]
        config: Option<PathBuf>,
        /// How to print: a table to read, or JSON or CSV for programs.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

#[derive(Subcommand)]
enum ExportCommand {
    /// The checkpoint, hash tiles and entry bundles as a C2SP tlog-tiles tree. Run again
    /// into the same directory, it adds only what is new and replaces the checkpoint last.
    /// Needs no lock: it may run beside `serve`.
    Tiles {
        /// The ledger's data directory.
        #[arg(long)]
        data: PathBuf,
        /// The directory to write the tree into (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// The entries, a table per record kind and the findings as Parquet files, with a
    /// manifest, for DuckDB, Spark or Trino (PROTOCOL §12.4; the rules in SQL are in
    /// sql/). Files of an earlier export in the directory are replaced.
    Parquet {
        /// The ledger's data directory.
        #[arg(long)]
        data: PathBuf,
        /// The directory to write the files into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// The month findings.parquet is as of, YYYY-MM (default: the audit's).
        #[arg(long)]
        as_of: Option<String>,
        /// The configuration file whose [audit] thresholds the findings use.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum WitnessCommand {
    /// Cosign the checkpoints of the given logs that extend the last one cosigned, at
    /// `POST <listen>/add-checkpoint`, until SIGTERM or Ctrl-C.
    Serve {
        /// The witness's private key (PKCS#8 PEM, as `keygen` writes it).
        #[arg(long)]
        key: PathBuf,
        /// The witness's name: its key name in cosignature lines, e.g. witness.example/w1.
        #[arg(long)]
        name: String,
        /// The directory of the witness's state: the last checkpoint cosigned per log.
        #[arg(long)]
        state: PathBuf,
        /// The address to listen on, HOST:PORT (port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: String,
        /// A log's verifier key (`dcledger verifier-key`); repeat for each log witnessed.
        #[arg(long = "log", value_name = "VKEY", required = true)]
        logs: Vec<String>,
        /// The configuration file; its [server] bounds apply to the witness's server.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ProofCommand {
    /// That an entry is in the tree of a given size.
    Inclusion {
        /// The ledger's data directory.
        #[arg(long)]
        data: PathBuf,
        /// The entry's index.
        index: u64,
        /// Tree size to prove against (default: current).
        #[arg(long)]
        size: Option<u64>,
    },
    /// That the tree of one size is a prefix of the tree of a larger size.
    Consistency {
        /// The ledger's data directory.
        #[arg(long)]
        data: PathBuf,
        /// The older, smaller tree size.
        #[arg(long)]
        from: u64,
        /// The newer, larger tree size.
        #[arg(long)]
        to: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(
        cli.command,
        Command::Serve { .. } | Command::Demo { .. } | Command::Witness { .. }
    ) {
        die_on_broken_pipe();
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, joined by ": ", each cause left out when the text before
/// it already says it (the library's errors name their cause in their own message).
fn message(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause);
        }
    }
    text
}

/// A command whose reader went away (`dcledger audit … | head -1`) ends as Unix tools do:
/// killed by SIGPIPE, quietly, with the status a shell expects (141), rather than a
/// panic from `println!`. Rust starts with SIGPIPE ignored so that writes fail instead;
/// the serving commands keep that, so that a client hanging up never stops a server.
fn die_on_broken_pipe() {
    // SAFETY: restores the default disposition of one signal before any thread starts;
    // no handler runs Rust code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The checkpoint key for a command that signs checkpoints of the ledger in `data`
/// (PROTOCOL §11): `--log-key`, else the configuration's `[log] key` (relative to the
/// configuration file), else the key file of a data directory made before the key moved
/// out, with a warning.
fn log_key(
    data: &Path,
    given: Option<PathBuf>,
    config: &Config,
    config_path: Option<&Path>,
) -> Result<SigningKey> {
    let configured = configured_log_key(given, config, config_path);
    let found = ledger::find_log_key(data, configured.as_deref())?;
    if found.inside_data {
        eprintln!(
            "warning: the log key {} is inside the data directory, so any copy or backup of \
             the directory can sign checkpoints; move it elsewhere (mode 0600) and give it with \
             --log-key FILE or [log] key in the configuration file",
            found.path.display()
        );
    }
    Ok(found.key)
}

/// The checkpoint key's file as the command line or the configuration names it: `given`
/// (`--log-key`), else the configuration's `[log] key`, relative to the configuration
/// file's directory.
fn configured_log_key(
    given: Option<PathBuf>,
    config: &Config,
    config_path: Option<&Path>,
) -> Option<PathBuf> {
    given.or_else(|| {
        config
            .log
            .key
            .as_ref()
            .map(|key| match config_path.and_then(Path::parent) {
                Some(dir) if key.is_relative() => dir.join(key),
                _ => key.clone(),
            })
    })
}

/// Serves until a signal; prints where, and what to try.
fn serve(bound: server::Bound, data: PathBuf, config: Config, log_key: SigningKey) -> Result<()> {
    init_logging();
    let serve_config = server::ServeConfig {
        data,
        config,
        log_key,
    };
    server::serve(
        bound,
        serve_config,
        Box::new(|addr, reader| {
            // A closed stdout (`serve | head -1`) must not bring the server down:
            // write without println!, which panics on a broken pipe.
            let mut out = std::io::stdout();
            let _ = writeln!(out, "listening on http://{addr}");
            if let Some(vkey) = reader.verifier_key() {
                let _ = writeln!(out, "verifier key: {vkey}");
            }
            let _ = writeln!(out, "open in a browser:");
            for path in ["/", "/regions", "/findings", "/valuation"] {
                let _ = writeln!(out, "  http://{addr}{path}");
            }
            let _ = writeln!(out, "the API (JSON), try:");
            for path in [
                "/v1/checkpoint",
                "/v1/facilities",
                "/v1/findings?severity=critical",
                "/v1/reports/regions",
                "/v1/reports/valuation?distressed=true",
                "/v1/entries?limit=5",
                "/v1/proofs/inclusion/1",
                "/metrics",
            ] {
                let _ = writeln!(out, "  curl http://{addr}{path}");
            }
            let _ = writeln!(
                out,
                "the tiled log (C2SP tlog-tiles), for verifiers and monitors:\n  curl \
                 http://{addr}/checkpoint\n  tiles under http://{addr}/tile/ and entry \
                 bundles under http://{addr}/tile/entries/"
            );
            let _ = out.flush();
        }),
    )?;
    let _ = writeln!(std::io::stdout(), "stopped cleanly");
    Ok(())
}

/// A progress bar of leaves for the long jobs (`verify`, `reindex`, `export`), drawn only when
/// standard error is a terminal: redirected output stays free of it.
struct LeafBar(Option<indicatif::ProgressBar>);

impl LeafBar {
    fn on_terminal() -> LeafBar {
        LeafBar(std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_message("leaves");
            bar
        }))
    }

    fn show(&self, done: u64, total: u64) {
        if let Some(bar) = &self.0 {
            bar.set_length(total);
            bar.set_position(done);
        }
    }

    fn finish(self) {
        if let Some(bar) = self.0 {
            bar.finish_and_clear();
        }
    }
}

/// Logs of the serving commands: to standard error, coloured only on a terminal.
fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(colour_on(&std::io::stderr()))
        .with_max_level(tracing::Level::INFO)
        .init();
}

/// Whether to colour what goes to `stream`: only a terminal, and never when `NO_COLOR`
/// is set to anything but the empty string (the convention of no-color.org's readers).
fn colour_on(stream: &impl IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The configuration file, or every default.
fn load_config(path: Option<&Path>) -> Result<Config> {
    let Some(path) = path else {
        return Ok(Config::default());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Config::from_toml(&text).with_context(|| format!("in {}", path.display()))
}

/// The projections of a ledger for a reading command; a ledger read without its lock
/// (served by another process, or a read-only copy) is said so on stderr, since its
/// projections are derived again from the segments first.
fn read_projections(data: &Path) -> Result<ledger::ReadProjections> {
    Ok(ledger::read_projections(data, |why| {
        eprintln!("dcledger: {why}")
    })?)
}

fn parse_as_of(as_of: Option<&str>) -> Result<Option<Month>> {
    as_of
        .map(|m| Month::checked(m).with_context(|| format!("--as-of {m:?}")))
        .transpose()
}

/// Prints a command's answer (a reader that went away ends the process quietly; see
/// `die_on_broken_pipe`).
fn print_text(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write to standard output")
}

/// `dcledger report ...`: the text to print.
fn run_report(command: ReportCommand) -> Result<String> {
    match command {
        ReportCommand::Regions {
            data,
            province,
            as_of,
            config,
            format,
        } => {
            let config = load_config(config.as_deref())?;
            let ledger = read_projections(&data)?;
            let reader = ledger.reader();
            let snapshot = audit::Snapshot::load(&reader)?;
            let query = Overrides::default();
            let request = report::Request {
                as_of: parse_as_of(as_of.as_deref())?,
                config: &config,
                query: &query,
            };
            let reports = report::Reports::new(&reader, &snapshot, &request)?;
            let mut all = reports.regions();
            if let Some(p) = &province {
                all.regions.retain(|r| r.region == *p);
                if all.regions.iter().all(|r| r.facility_ids.is_empty()) {
                    bail!(
                        "no facility in a report as of {} is in {p:?}",
                        all.basis.as_of
                    );
                }
            }
            Ok(match format {
                Format::Table => report::render::regions_table(&all),
                Format::Json => json_line(&all)?,
                Format::Csv => report::render::regions_csv(&all),
            })
        }
        ReportCommand::Valuation {
            data,
            facility,
            all,
            as_of,
            set,
            rent,
            config,
            format,
        } => {
            let config = load_config(config.as_deref())?;
            let mut query = Overrides::default();
            for (flag, prefix, items) in [("--set", "", &set), ("--rent", "rent.", &rent)] {
                for item in items {
                    let (name, value) = item
                        .split_once('=')
                        .with_context(|| format!("{flag} {item:?}: expected NAME=VALUE"))?;
                    query
                        .set_text(&format!("{prefix}{name}"), value)
                        .with_context(|| format!("{flag} {item:?}"))?;
                }
            }
            let ledger = read_projections(&data)?;
            let reader = ledger.reader();
            let snapshot = audit::Snapshot::load(&reader)?;
            let request = report::Request {
                as_of: parse_as_of(as_of.as_deref())?,
                config: &config,
                query: &query,
            };
            let reports = report::Reports::new(&reader, &snapshot, &request)?;
            let valuations = if all {
                reports.valuations(&Default::default())
            } else {
                let id = facility.context("name a facility or pass --all")?;
                let one = reports
                    .valuation(&id)
                    .with_context(|| format!("no facility {id:?} is registered"))?;
                if format == Format::Json {
                    return json_line(&one);
                }
                vec![one.valuation]
            };
            Ok(match format {
                Format::Table => report::render::valuations_table(&reports.basis, &valuations),
                Format::Json => json_line(&report::ValuationsReport {
                    basis: reports.basis.clone(),
                    valuations,
                })?,
                Format::Csv => report::render::valuations_csv(&reports.basis, &valuations),
            })
        }
    }
}

/// A report as one line of JSON.
fn json_line<T: serde::Serialize>(value: &T) -> Result<String> {
    let mut text = serde_json::to_string(value).context("cannot write the report as JSON")?;
    text.push('\n');
    Ok(text)
}

fn read_input(source: &str) -> Result<Box<dyn BufRead + Send>> {
    Ok(if source == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        Box::new(BufReader::new(
            std::fs::File::open(source).with_context(|| format!("cannot open {source}"))?,
        ))
    })
}

fn read_json(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

fn print_json(value: &Value) {
    println!("{}", views::to_text(value));
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Keygen { out } => {
            let key = keys::generate()?;
            keys::write_signing_key(&out, &key)?;
            println!("{}", keys::public_hex(&key.verifying_key()));
        }
        Command::Sign {
            key,
            origin,
            kind,
            seq,
            ts,
            body,
        } => {
            // The origin is given, not read from a data directory: whoever signs (an
            // operator, a grantor) holds a key, not the registry's ledger, and must say
            // which ledger the signature is for.
            if !checkpoint::valid_origin(&origin) {
                bail!(
                    "--origin {origin:?} is not a ledger origin: 1-255 characters of [A-Za-z0-9._/:-]"
                );
            }
            let key = keys::load_signing_key(&key)?;
            let Some(kind) = Kind::parse(&kind) else {
                bail!(
                    "unknown kind {kind:?}; kinds are: {}",
                    Kind::ALL
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            };
            let mut text = String::new();
            read_input(&body)?
                .read_to_string(&mut text)
                .context("cannot read the body")?;
            let body = json::from_str(&text).context("the body")?;
            let ts = match ts {
                Some(ts) => ts,
                None => dates::format_instant(dates::now())
                    .context("the system clock is out of range")?,
            };
            let envelope = entry::sign_envelope(
                &key,
                &origin,
                EntryDraft {
                    kind,
                    seq,
                    ts: &ts,
                    body,
                },
            )?;
            print_json(&envelope);
        }
        Command::Init {
            data,
            origin,
            name,
            authority_key,
            log_key,
            config,
        } => {
            let settings = load_config(config.as_deref())?;
            let log_key = configured_log_key(log_key, &settings, config.as_deref()).context(
                "init needs the key that will sign checkpoints: give --log-key FILE, or \
                     --config FILE whose [log] key names it",
            )?;
            let authority = keys::load_signing_key(&authority_key)?;
            let log = keys::load_signing_key(&log_key)?;
            let name = name.unwrap_or_else(|| origin.clone());
            let ledger = Ledger::init(&data, &origin, &name, &authority, &log)?;
            let reader = ledger.reader();
            println!("initialised ledger {origin} in {}", data.display());
            if let Some(vkey) = ledger.verifier_key() {
                println!("verifier key: {vkey}");
            }
            print!("{}", reader.checkpoint());
            ledger.close()?;
            eprintln!(
                "the log key stays in {} (it is not copied into the data directory): give it \
                 to serve, append and reindex with --log-key, or as [log] key in the \
                 configuration file",
                log_key.display()
            );
        }
        Command::Append {
            data,
            log_key: key_path,
            config,
            input,
            report_batches,
        } => {
            let settings = load_config(config.as_deref())?;
            let key = log_key(&data, key_path, &settings, config.as_deref())?;
            let mut ledger = Ledger::open(&data, key)?;
            let total_bytes = if input == "-" {
                None
            } else {
                std::fs::metadata(&input).ok().map(|m| m.len())
            };
            let bar = std::io::stderr().is_terminal().then(|| match total_bytes {
                Some(n) => indicatif::ProgressBar::new(n),
                None => indicatif::ProgressBar::new_spinner(),
            });
            let summary = bulk::append_ndjson(&mut ledger, read_input(&input)?, |p| {
                if let Some(bar) = &bar {
                    bar.set_position(p.bytes_read);
                    bar.set_message(format!("{} entries", p.accepted));
                }
                if report_batches {
                    let ack = serde_json::json!({
                        "accepted": p.accepted,
                        "present": p.present,
                        "checkpoint": p.checkpoint,
                    });
                    eprintln!("{ack}");
                }
            })?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            if summary.present > 0 {
                // PROTOCOL §3: a retry is answered, not written again.
                println!(
                    "accepted {} entries; {} were already in the ledger (nothing written for them)",
                    summary.accepted, summary.present
                );
            } else {
                println!("accepted {} entries", summary.accepted);
            }
            print!("{}", summary.checkpoint);
            std::io::stdout().flush()?;
            // PROTOCOL §12: the new checkpoint goes to every witness, after the
            // acknowledgement (the entries are durable already), while this process is still
            // the ledger's one writer, which keeps `DIR/witnessed`.
            let witnesses = &settings.witnesses;
            let asked = ledger::witnessing::ask_once(&ledger.reader(), data.clone(), witnesses);
            for (witness, asked) in witnesses.iter().zip(asked) {
                match asked {
                    Ok(size) => eprintln!(
                        "witness {}: cosigned the checkpoint of size {size}",
                        witness.url
                    ),
                    Err(e) => eprintln!(
                        "witness: no cosignature this time ({e}); the entries are durable, and \
                         the next `append`, or `serve`, asks again"
                    ),
                }
            }
            ledger.close()?;
            if let Some(refused) = summary.refused {
                eprintln!(
                    "line {}: refused, its batch was not written: {}",
                    refused.line, refused.rejection
                );
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Get { data, index } => {
            let ledger = Unlocked::open(&data)?;
            print_json(&views::entry(&ledger.reader()?.entry(index)?)?);
        }
        Command::Checkpoint { data } => {
            print!("{}", Unlocked::open(&data)?.checkpoint());
        }
        Command::Export {
            export: ExportCommand::Tiles { data, out },
        } => {
            let bar = LeafBar::on_terminal();
            let done = dcledger::log::export::export_tiles(&data, &out, &|done, total| {
                bar.show(done, total)
            })?;
            bar.finish();
            eprintln!(
                "exported a tree of {} entries to {}: {} files written, {} already there",
                done.size,
                out.display(),
                done.written,
                done.kept
            );
        }
        Command::Export {
            export:
                ExportCommand::Parquet {
                    data,
                    out,
                    as_of,
                    config,
                },
        } => {
            let config = load_config(config.as_deref())?;
            let as_of = parse_as_of(as_of.as_deref())?;
            let ledger = read_projections(&data)?;
            let bar = LeafBar::on_terminal();
            let manifest = dcledger::export::export_parquet(
                &ledger.reader(),
                &out,
                &dcledger::export::ParquetRequest {
                    as_of,
                    config: &config,
                },
                &|done, total| bar.show(done, total),
            )?;
            bar.finish();
            let rows: u64 = manifest.files.values().map(|f| f.rows).sum();
            eprintln!(
                "exported {} entries to {}: {} files, {rows} rows, findings as of {}",
                manifest.tree_size,
                out.display(),
                manifest.files.len(),
                manifest.as_of
            );
        }
        Command::VerifierKey { data } => {
            println!("{}", Unlocked::open(&data)?.verifier_key()?);
        }
        Command::Proof { proof } => match proof {
            ProofCommand::Inclusion { data, index, size } => {
                let reader = Unlocked::open(&data)?.reader()?;
                print_json(&views::inclusion(&reader.inclusion(index, size)?));
            }
            ProofCommand::Consistency { data, from, to } => {
                let reader = Unlocked::open(&data)?.reader()?;
                print_json(&views::consistency(&reader.consistency(from, to)?));
            }
        },
        Command::Verify { data } => {
            let bar = LeafBar::on_terminal();
            let report =
                Unlocked::open(&data)?.verify_reporting(&|done, total| bar.show(done, total))?;
            bar.finish();
            println!(
                "ok: {} entries, root {}, latest checkpoint (size {}) verifies",
                report.entries,
                hex::encode(report.root),
                report.checkpoint_size
            );
        }
        Command::VerifyProof {
            checkpoint,
            key,
            entry,
            old_checkpoint,
            proof,
        } => {
            let note = std::fs::read_to_string(&checkpoint)
                .with_context(|| format!("cannot read {}", checkpoint.display()))?;
            let proof = read_json(&proof)?;
            match (entry, old_checkpoint) {
                (_, Some(old)) => {
                    let old_note = std::fs::read_to_string(&old)
                        .with_context(|| format!("cannot read {}", old.display()))?;
                    let (old, new) = proofcheck::check_consistency(&old_note, &note, &key, &proof)?;
                    println!(
                        "ok: {} at size {} is consistent with size {}",
                        new.origin, new.size, old.size
                    );
                }
                (Some(entry), None) => {
                    let leaf = read_json(&entry)?;
                    let (cp, index) = proofcheck::check_inclusion(&note, &key, &leaf, &proof)?;
                    println!(
                        "ok: entry {index} is included in {} at size {}",
                        cp.origin, cp.size
                    );
                }
                (None, None) => bail!(
                    "give --entry for an inclusion proof or --old-checkpoint for a consistency proof"
                ),
            }
        }
        Command::Serve {
            data,
            listen,
            log_key: key_path,
            config,
        } => {
            let settings = load_config(config.as_deref())?;
            let key = log_key(&data, key_path, &settings, config.as_deref())?;
            serve(server::bind(&listen)?, data, settings, key)?;
        }
        Command::Submit {
            server,
            key,
            kind,
            origin,
            input,
        } => {
            let client = client::Client::new(&server);
            let key = key.map(|key| keys::load_signing_key(&key)).transpose()?;
            let signer = match (&key, kind) {
                (Some(key), Some(kind)) => {
                    let kind =
                        Kind::parse(&kind).with_context(|| format!("unknown kind {kind:?}"))?;
                    let served = client.origin()?;
                    if let Some(origin) = origin
                        && origin != served
                    {
                        bail!(
                            "{server} serves the ledger {served:?}, not {origin:?}: nothing was signed"
                        );
                    }
                    let seq = client.next_seq(&key.verifying_key().to_bytes())?;
                    Some(client::BodySigner::new(key, served, kind, seq)?)
                }
                _ => None,
            };
            // Each batch's entries as it lands; the checkpoint of the last one at the
            // end, even when a later line or batch stops the run.
            let mut checkpoint = None;
            let submitted = client::submit_ndjson(&client, read_input(&input)?, signer, |done| {
                for (index, leaf_hash) in &done.entries {
                    println!("{index} {leaf_hash}");
                }
                checkpoint = Some(done.checkpoint.clone());
            });
            if let Some(note) = checkpoint {
                print!("{note}");
            }
            submitted?;
        }
        Command::Demo { data, listen } => {
            // The address first: a taken port is found before any work, and before a
            // temporary directory exists to be left behind.
            let bound = server::bind(&listen)?;
            // Without --data, the ledger lives in a temporary directory removed when the
            // demo ends (Ctrl-C or SIGTERM stop the server and return here).
            let temporary = match data {
                Some(_) => None,
                None => Some(
                    tempfile::Builder::new()
                        .prefix("dcledger-demo-")
                        .tempdir()
                        .context("creating the demo's temporary directory")?,
                ),
            };
            let data = match (&temporary, data) {
                (Some(dir), _) => dir.path().to_path_buf(),
                (None, Some(data)) => data,
                (None, None) => {
                    unreachable!("a temporary directory is made when --data is not given")
                }
            };
            let demo = dcledger::demo::prepare(&data)?;
            println!(
                "dcledger demo: {} entries in {}",
                demo.entries,
                data.display()
            );
            println!("verifier key: {}", demo.verifier_key);
            println!("audit as of {}: {} findings", demo.as_of, demo.findings);
            for (rule, n) in &demo.findings_by_rule {
                println!("  {n:>4}  {rule}");
            }
            if temporary.is_some() {
                println!(
                    "(a temporary ledger, removed when the demo stops; keep one with --data DIR)"
                );
            }
            serve(bound, data, Config::default(), dcledger::demo::log_key()?)?;
            if let Some(dir) = temporary {
                dir.close()
                    .context("removing the demo's temporary directory")?;
            }
        }
        Command::Gen {
            facilities,
            months,
            seed,
            start,
            anomaly_rate,
            demo,
            origin,
            out,
        } => {
            let first = Month::checked(&start).with_context(|| format!("--start {start:?}"))?;
            let config = synthetic::GenConfig {
                facilities,
                months,
                seed,
                start: (first.year, first.month),
                anomaly_rate_pct: anomaly_rate,
                demo,
                origin,
            };
            let summary = synthetic::generate(&config, &out)?;
            println!(
                "generated {} entries from {} parties with {} labels, ending {}, in {}",
                summary.entries,
                summary.parties,
                summary.labels,
                summary.last_month,
                out.display()
            );
            println!(
                "load it: dcledger init --data DIR --origin {} --authority-key {k}/authority.pem --log-key {k}/log.pem && dcledger append --data DIR --log-key {k}/log.pem {}",
                config.origin,
                out.join("entries.ndjson").display(),
                k = out.join("keys").display()
            );
        }
        Command::Audit {
            data,
            as_of,
            config,
            format,
            rule,
            facility,
            min_severity,
            print_config,
        } => {
            if print_config {
                print!("{}", config::DEFAULT_TOML);
                return Ok(ExitCode::SUCCESS);
            }
            let data = data.context("--data is required")?;
            let config = load_config(config.as_deref())?;
            let as_of = parse_as_of(as_of.as_deref())?;
            let rule = match rule {
                Some(r) => Some(audit::Rule::parse(&r).with_context(|| {
                    let names: Vec<&str> = audit::Rule::ALL.iter().map(|r| r.as_str()).collect();
                    format!("unknown rule {r:?}; rules are: {}", names.join(", "))
                })?),
                None => None,
            };
            let min_severity = match min_severity {
                Some(s) => Some(audit::Severity::parse(&s).with_context(|| {
                    format!("unknown severity {s:?}; use low, medium, high or critical")
                })?),
                None => None,
            };
            let ledger = read_projections(&data)?;
            let reader = ledger.reader();
            let request = audit::AuditRequest {
                as_of,
                config: config.audit.clone(),
                filter: audit::render::Filter {
                    rule,
                    facility,
                    min_severity,
                },
            };
            let (as_of, findings) = audit::run(&reader, &request)?;
            let basis = report::Basis::new(
                &reader,
                reader.size(),
                as_of,
                &config,
                &Overrides::default(),
            )?;
            let text = match format {
                Format::Table => audit::render::table(as_of, &findings),
                Format::Json => audit::render::json(&basis, &findings),
                Format::Csv => report::render::findings_csv(&basis, &findings),
            };
            print_text(&text)?;
        }
        Command::Report { report } => {
            print_text(&run_report(report)?)?;
        }
        Command::VerifyCheckpoint { file, trusted } => {
            let (log, witnesses, quorum) = trusted.parse()?;
            let mut note = String::new();
            read_input(&file)?
                .read_to_string(&mut note)
                .with_context(|| format!("reading {file}"))?;
            let witnessed = cosignature::verify_witnessed(&note, &log, &witnesses, quorum)?;
            let c = &witnessed.checkpoint;
            println!(
                "ok: {} at size {}, root {}; cosigned by {} of {} witnesses given (quorum {quorum}){}",
                c.origin,
                c.size,
                hex::encode(c.root),
                witnessed.cosigned_by.len(),
                witnesses.len(),
                if witnessed.cosigned_by.is_empty() {
                    String::new()
                } else {
                    format!(": {}", witnessed.cosigned_by.join(", "))
                }
            );
        }
        Command::Monitor {
            url,
            trusted,
            state,
        } => {
            let (log, witnesses, quorum) = trusted.parse()?;
            let given = witnesses.len();
            let checked = monitor::Monitor::new(&url, log, witnesses, quorum, &state)?.run()?;
            println!(
                "ok: {} at size {} (root {}); checked {} new {} since size {}{}; {} signer \
                 keys followed; {} tiles and bundles fetched; cosigned by {} of {given} \
                 witnesses given (quorum {quorum}){}",
                checked.origin,
                checked.new_size,
                hex::encode(checked.root),
                checked.new_leaves,
                if checked.new_leaves == 1 {
                    "leaf"
                } else {
                    "leaves"
                },
                checked.old_size,
                if checked.first_run {
                    " (first run: the whole ledger)"
                } else {
                    ""
                },
                checked.signers,
                checked.fetched,
                checked.cosigned_by.len(),
                if checked.cosigned_by.is_empty() {
                    String::new()
                } else {
                    format!(": {}", checked.cosigned_by.join(", "))
                }
            );
        }
        Command::Witness {
            witness:
                WitnessCommand::Serve {
                    key,
                    name,
                    state,
                    listen,
                    logs,
                    config,
                },
        } => {
            let settings = load_config(config.as_deref())?;
            let logs = logs
                .iter()
                .map(|v| checkpoint::NoteVerifier::parse(v).with_context(|| format!("--log {v}")))
                .collect::<Result<Vec<_>>>()?;
            let cosigner = cosignature::Cosigner::new(&name, keys::load_signing_key(&key)?)
                .context("--name")?;
            let bound = server::bind(&listen)?;
            let witness = dcledger::witness::Witness::open(&state, cosigner, logs)?;
            init_logging();
            let vkey = witness.cosigner().verifier_key();
            server::serve_witness(
                bound,
                witness,
                &settings.server,
                Box::new(move |addr| {
                    let mut out = std::io::stdout();
                    let _ = writeln!(out, "listening on http://{addr}");
                    let _ = writeln!(out, "verifier key: {vkey}");
                    let _ = writeln!(
                        out,
                        "logs send checkpoints to http://{addr}/add-checkpoint ([[witness]] url = \"http://{addr}\")"
                    );
                    let _ = out.flush();
                }),
            )?;
            let _ = writeln!(std::io::stdout(), "stopped cleanly");
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "dcledger",
                &mut std::io::stdout(),
            );
        }
        Command::Reindex {
            data,
            trust,
            log_key: key_path,
            config,
        } => {
            let settings = load_config(config.as_deref())?;
            let key = log_key(&data, key_path, &settings, config.as_deref())?;
            let bar = LeafBar::on_terminal();
            let ledger =
                Ledger::reindex_reporting(&data, key, trust, &|done, total| bar.show(done, total))?;
            bar.finish();
            println!("reindexed {} entries", ledger.size());
            ledger.close()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command, option and argument in `--help` says what it is for: the command
    /// tree is walked whole, so a new option without a description fails here.
    #[test]
    fn every_command_and_argument_has_a_description() {
        let cli = Cli::command();
        cli.clone().debug_assert();
        let mut missing = Vec::new();
        let mut stack = vec![(String::from("dcledger"), cli)];
        while let Some((path, command)) = stack.pop() {
            if command.get_about().is_none() {
                missing.push(path.clone());
            }
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                // clap's own, described by clap.
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                stack.push((format!("{path} {}", sub.get_name()), sub.clone()));
            }
        }
        assert!(
            missing.is_empty(),
            "no description in --help for: {missing:#?}"
        );
    }

    /// A cause the message already names is said once; context added over an error, and
    /// a cause the message does not name, are kept.
    #[test]
    fn an_error_names_each_cause_once() {
        let missing = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let named = anyhow::Error::new(dcledger::keys::KeyError::Read {
            path: "k.pem".into(),
            source: missing(),
        });
        assert_eq!(message(&named), "cannot read key file k.pem: no such file");
        let wrapped = anyhow::Error::new(missing()).context("cannot open k.pem");
        assert_eq!(message(&wrapped), "cannot open k.pem: no such file");
        let layered = named.context("loading the log key");
        assert_eq!(
            message(&layered),
            "loading the log key: cannot read key file k.pem: no such file"
        );
    }
}
