//! Command-line surface. Admin commands open the store directly, so they work
//! while a server runs on the same data directory (SQLite WAL allows it); the
//! server sees their changes on the next request.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use open131_client::KycClient;
use open131_server::config::{DATA_DIR_DEFAULT, LISTEN_DEFAULT};
use open131_server::{demo, App, Config, SystemClock};
use open131_store::Store;
use open131_wire::sign::{SigningKey, VerifyingKey};
use time::OffsetDateTime;

/// File in the data directory that a running server holds locked.
pub const SERVE_LOCK_FILE_NAME: &str = "serve.lock";

#[derive(Parser, Debug)]
#[command(name = "open131", version, about = "A self-hosted Bank 131 partner API server")]
pub struct Args {
    /// Data directory (database, demo key).
    #[arg(long, global = true, env = "OPEN131_DATA_DIR", default_value = DATA_DIR_DEFAULT)]
    pub data_dir: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server.
    Serve {
        #[arg(long, env = "OPEN131_LISTEN", default_value = LISTEN_DEFAULT)]
        listen: std::net::SocketAddr,
        /// How long a new check stays pending: `0`, `500ms`, `2s`, `5m`, `1h` (bare number = seconds).
        #[arg(long, env = "OPEN131_KYC_DELAY", default_value = "2s", value_parser = parse_duration)]
        kyc_delay: Duration,
        /// Sandbox provider: time from confirmation to a payout's result.
        #[arg(long, env = "OPEN131_PAYOUT_DELAY", default_value = "1s", value_parser = parse_duration)]
        payout_delay: Duration,
    },
    /// Project wallets.
    #[command(subcommand)]
    Wallet(WalletCommand),
    /// The webhook outbox.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// The MVD invalid-passports registry.
    #[command(subcommand)]
    Registry(crate::registry_cli::RegistryCommand),
    /// The taxpayer (INN to passport) registry.
    #[command(subcommand)]
    Taxpayers(crate::registry_cli::TaxpayersCommand),
    /// Manage partner projects.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Key utilities.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Passport verification as a partner would call it.
    #[command(subcommand)]
    Kyc(KycCommand),
    /// Load benchmarks against a running server.
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
}

#[derive(Subcommand, Debug)]
pub enum ProjectCommand {
    /// Register a project with its first public key.
    Add {
        id: String,
        #[arg(long)]
        public_key: PathBuf,
    },
    /// Register one more public key for a project (key rotation).
    AddKey {
        id: String,
        #[arg(long)]
        public_key: PathBuf,
    },
    /// List projects and their keys.
    List,
    /// Change a project's settings.
    Set {
        id: String,
        /// Where webhooks are POSTed (`none` removes it).
        #[arg(long)]
        webhook_url: Option<String>,
        /// Skip the confirmation step (the bank's single-request payouts).
        #[arg(long)]
        auto_confirm: Option<bool>,
        /// How long a payout waits for `session/confirm`, e.g. `24h`.
        #[arg(long, value_parser = parse_duration)]
        confirm_timeout: Option<Duration>,
        /// Main-API methods the project may call: `*` or a comma-separated list.
        #[arg(long)]
        methods: Option<String>,
        /// `sandbox` or `registry`.
        #[arg(long)]
        kyc_mode: Option<String>,
        /// Source addresses allowed for the project: `*` or e.g. `127.0.0.1,10.0.0.0/8`.
        #[arg(long)]
        allowed_ips: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum WalletCommand {
    /// Add money to a project's wallet (amount in minor units, e.g. kopecks).
    Topup {
        project: String,
        amount: i64,
        #[arg(long, default_value = "rub")]
        currency: String,
    },
    /// Show a project's wallets.
    Balance { project: String },
}

#[derive(Subcommand, Debug)]
pub enum WebhooksCommand {
    /// Every delivery with its attempts, response codes and next retry.
    List {
        #[arg(long)]
        project: Option<String>,
        #[arg(long)]
        session: Option<String>,
        /// Show each attempt too.
        #[arg(long)]
        attempts: bool,
    },
    /// Send a webhook again (the running server picks it up within a second).
    Resend { id: i64 },
    /// Make every pending webhook due now instead of at its next retry.
    RetryPending {
        #[arg(long)]
        project: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Print the bank's public key (PEM): partners verify webhooks with it.
    BankPublic,
    /// Write a new RSA-2048 private key (PKCS#8 PEM) and its public key.
    Generate {
        /// Where to write the private key.
        private_key: PathBuf,
        /// Where to write the public key (default: `<private_key>.pub`).
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum KycCommand {
    /// Send a check for the person in a JSON file (the v1.1 `payload` object); prints its id.
    Check {
        #[arg(long)]
        project: String,
        /// The project's private key (PEM).
        #[arg(long)]
        key: PathBuf,
        #[arg(long, default_value = "http://127.0.0.1:8131")]
        url: String,
        person: PathBuf,
    },
    /// Force a pending check's final outcome (on the data directory, like other admin commands).
    Resolve {
        id: String,
        #[arg(long)]
        project: String,
        /// ok, passport_invalid, passport_not_found, inn_mismatch or invalid_sign.
        #[arg(long = "as")]
        outcome: String,
    },
    /// Print the state of a check.
    Status {
        id: String,
        #[arg(long)]
        project: String,
        /// Unused by the status call (it is not signed); accepted for symmetry with `check`.
        #[arg(long)]
        key: Option<PathBuf>,
        #[arg(long, default_value = "http://127.0.0.1:8131")]
        url: String,
    },
}

/// Parses `0`, `250ms`, `2s`, `5m`, `1h`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 2s or 500ms"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("unknown unit {unit:?} (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| e.to_string())
}

fn open_store(data_dir: &Path) -> anyhow::Result<Arc<dyn Store>> {
    Ok(Arc::new(
        open131_store::sqlite::SqliteStore::open(data_dir)
            .with_context(|| format!("opening the store in {}", data_dir.display()))?,
    ))
}

fn read_public_key(path: &Path) -> anyhow::Result<VerifyingKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    VerifyingKey::from_pem(&text).with_context(|| format!("{} is not a usable RSA key", path.display()))
}

fn read_signing_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    SigningKey::from_pem(&text).with_context(|| format!("{} is not a usable RSA private key", path.display()))
}

fn print_answer(answer: &open131_client::Answer) -> anyhow::Result<()> {
    println!("HTTP {} {}", answer.http_status, serde_json::to_string(&answer.body)?);
    Ok(())
}

pub async fn execute(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Serve { listen, kyc_delay, payout_delay } => {
            serve(args.data_dir, listen, kyc_delay, payout_delay).await
        }
        Command::Keys(KeysCommand::BankPublic) => {
            std::fs::create_dir_all(&args.data_dir)?;
            print!("{}", demo::ensure_bank_key(&args.data_dir)?.verifying_key()?.to_pem());
            Ok(())
        }
        Command::Wallet(cmd) => wallet(&args.data_dir, cmd).await,
        Command::Registry(cmd) => crate::registry_cli::registry(&args.data_dir, cmd).await,
        Command::Taxpayers(cmd) => crate::registry_cli::taxpayers(&args.data_dir, cmd).await,
        Command::Kyc(KycCommand::Resolve { id, project, outcome }) => {
            let outcome = open131_domain::kyc::Outcome::parse(&outcome).with_context(|| {
                format!("--as must be one of ok, passport_invalid, passport_not_found, inn_mismatch, invalid_sign (got {outcome:?})")
            })?;
            let id: i64 = id.parse().with_context(|| format!("{id:?} is not a check id"))?;
            let store = open_store(&args.data_dir)?;
            let answer = open131_server::admin::resolve_in_store(
                store.as_ref(),
                &project,
                id,
                outcome,
                OffsetDateTime::now_utc(),
            )
            .await?;
            println!("{answer}");
            Ok(())
        }
        Command::Webhooks(cmd) => webhooks(&args.data_dir, cmd).await,
        Command::Project(cmd) => project(&args.data_dir, cmd).await,
        Command::Keys(KeysCommand::Generate { private_key, public_key }) => {
            let key = SigningKey::generate()?;
            let public_path = public_key.unwrap_or_else(|| PathBuf::from(format!("{}.pub", private_key.display())));
            std::fs::write(&private_key, key.to_pkcs8_pem()?)
                .with_context(|| format!("writing {}", private_key.display()))?;
            std::fs::write(&public_path, key.verifying_key()?.to_pem())
                .with_context(|| format!("writing {}", public_path.display()))?;
            println!("private key: {}\npublic key:  {}", private_key.display(), public_path.display());
            Ok(())
        }
        Command::Kyc(KycCommand::Check { project, key, url, person }) => {
            let text = std::fs::read_to_string(&person).with_context(|| format!("reading {}", person.display()))?;
            let payload: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("{} is not JSON", person.display()))?;
            let client = KycClient::new(&url, &project, read_signing_key(&key)?);
            let answer = client.check(&payload).await?;
            match answer.body.data.as_ref() {
                Some(data) if answer.http_status == 200 => {
                    println!("{}", data.id);
                    if answer.body.error.is_some() {
                        eprintln!("{}", serde_json::to_string(&answer.body)?);
                    }
                    Ok(())
                }
                _ => {
                    print_answer(&answer)?;
                    bail!("the check was not accepted")
                }
            }
        }
        Command::Kyc(KycCommand::Status { id, project, key: _, url }) => {
            // The status call is not signed; a throwaway key satisfies the client type.
            let client = KycClient::new(&url, &project, SigningKey::generate()?);
            print_answer(&client.status(&id).await?)
        }
        Command::Bench(cmd) => crate::bench::run(&args.data_dir, cmd).await,
    }
}

async fn project(data_dir: &Path, cmd: ProjectCommand) -> anyhow::Result<()> {
    let store = open_store(data_dir)?;
    let now = OffsetDateTime::now_utc();
    match cmd {
        ProjectCommand::Add { id, public_key } => {
            validate_project_id(&id)?;
            let key = read_public_key(&public_key)?;
            if !store.create_project(&id, now).await? {
                bail!("project {id:?} already exists (use `project add-key` to add a key)");
            }
            store.add_project_key(&id, &key.fingerprint(), key.spki_der(), now).await?;
            println!("project {id} added with key {}", key.fingerprint());
        }
        ProjectCommand::AddKey { id, public_key } => {
            let key = read_public_key(&public_key)?;
            if store.add_project_key(&id, &key.fingerprint(), key.spki_der(), now).await? {
                println!("key {} added to project {id}", key.fingerprint());
            } else {
                println!("project {id} already has key {}", key.fingerprint());
            }
        }
        ProjectCommand::Set { id, webhook_url, auto_confirm, confirm_timeout, methods, kyc_mode, allowed_ips } => {
            if let Some(list) = &allowed_ips {
                open131_domain::allowlist::IpAllowlist::parse(list)
                    .map_err(|e| anyhow::anyhow!("--allowed-ips: {e}"))?;
            }
            if let Some(mode) = &kyc_mode {
                if !["sandbox", "registry"].contains(&mode.as_str()) {
                    bail!("--kyc-mode must be sandbox or registry");
                }
            }
            if let Some(url) = &webhook_url {
                if url != "none" && !(url.starts_with("http://") || url.starts_with("https://")) {
                    bail!("--webhook-url must start with http:// or https:// (or be `none`)");
                }
            }
            let change = open131_store::SettingsChange {
                webhook_url: webhook_url.map(|u| (u != "none").then_some(u)),
                auto_confirm,
                confirm_timeout_s: confirm_timeout.map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
                methods,
                kyc_mode,
                allowed_ips,
            };
            store.set_project_settings(&id, change, now).await?;
            let p = store.project(&id).await?.context("project vanished")?;
            println!("{id}: {:?}", p.settings);
        }
        ProjectCommand::List => {
            for p in store.projects().await? {
                println!("{}\tkyc_mode={}\tkeys={}", p.id, p.settings.kyc_mode, p.keys.len());
                for k in &p.keys {
                    println!("\t{}", k.fingerprint);
                }
            }
        }
    }
    Ok(())
}

/// Project ids travel in a header: printable ASCII without spaces, 1–128 bytes.
fn validate_project_id(id: &str) -> anyhow::Result<()> {
    let ok = !id.is_empty()
        && id.len() <= open131_server::kyc::PROJECT_ID_MAX_BYTES
        && id.bytes().all(|b| b.is_ascii_graphic());
    if !ok {
        bail!("project id must be 1-128 printable ASCII characters without spaces");
    }
    Ok(())
}

async fn wallet(data_dir: &Path, cmd: WalletCommand) -> anyhow::Result<()> {
    let store = open_store(data_dir)?;
    match cmd {
        WalletCommand::Topup { project, amount, currency } => {
            open131_domain::payout::Money::new(amount, &currency).map_err(|e| anyhow::anyhow!(e))?;
            if store.project(&project).await?.is_none() {
                bail!("no such project: {project}");
            }
            store.topup(&project, &currency.to_ascii_lowercase(), amount, OffsetDateTime::now_utc()).await?;
            println!("topped up {project} with {amount} {currency}");
        }
        WalletCommand::Balance { project } => {
            for w in store.wallets(&project).await? {
                println!("{}	available={}	reserved={}	paid_out={}", w.currency, w.available, w.reserved, w.payouts);
            }
        }
    }
    Ok(())
}

async fn webhooks(data_dir: &Path, cmd: WebhooksCommand) -> anyhow::Result<()> {
    let store = open_store(data_dir)?;
    match cmd {
        WebhooksCommand::List { project, session, attempts } => {
            let filter = open131_store::WebhookFilter { project_id: project, session_id: session, limit: None };
            println!("id	project	session	type	state	attempts	last_status	next_attempt	last_error");
            for w in store.webhooks(filter).await? {
                let next = if w.state == open131_store::WebhookState::Pending {
                    open131_wire::api::timestamp(w.next_attempt_at)
                } else {
                    "-".into()
                };
                println!(
                    "{}	{}	{}	{}	{}	{}	{}	{}	{}",
                    w.id,
                    w.project_id,
                    w.session_id,
                    w.kind,
                    w.state.as_str(),
                    w.attempts,
                    w.last_status.map_or("-".into(), |s| s.to_string()),
                    next,
                    w.last_error.as_deref().unwrap_or("-")
                );
                if attempts {
                    for a in store.webhook_attempts(w.id).await? {
                        println!(
                            "	attempt {} at {}: {} ({} ms){}",
                            a.attempt,
                            open131_wire::api::timestamp(a.at),
                            a.status.map_or("no response".into(), |s| format!("HTTP {s}")),
                            a.duration_ms,
                            a.error.map(|e| format!(" {e}")).unwrap_or_default()
                        );
                    }
                }
            }
        }
        WebhooksCommand::RetryPending { project } => {
            let n = store.resend_pending(project.as_deref(), OffsetDateTime::now_utc()).await?;
            println!("{n} pending webhooks are due now");
        }
        WebhooksCommand::Resend { id } => {
            if !store.resend_webhook(id, OffsetDateTime::now_utc()).await? {
                bail!("no webhook {id}, or it is being delivered right now (try again in a moment)");
            }
            println!("webhook {id} is pending again");
        }
    }
    Ok(())
}

async fn serve(
    data_dir: PathBuf,
    listen: std::net::SocketAddr,
    kyc_delay: Duration,
    payout_delay: Duration,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let lock_path = data_dir.join(SERVE_LOCK_FILE_NAME);
    let lock = std::fs::File::create(&lock_path).with_context(|| format!("creating {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        bail!("another open131 server is already serving {}", data_dir.display());
    }
    let store = open_store(&data_dir)?;
    let demo = demo::ensure_demo(store.as_ref(), &data_dir, OffsetDateTime::now_utc()).await?;
    let dir = data_dir.clone();
    let registries = tokio::task::spawn_blocking(move || open131_server::registries::Registries::load_at_start(&dir))
        .await?
        .map_err(|e| {
            anyhow::anyhow!(
                "refusing to start: {e}. Import the registry again (open131 registry import / taxpayers import) \
                 or remove the file to run without it."
            )
        })?;
    let admin_token = demo::ensure_admin_token(&data_dir)?;

    let mut config = Config::new(data_dir.clone());
    config.listen = listen;
    config.kyc_delay = kyc_delay;
    config.payout_processing_delay = payout_delay;
    let bank_key = demo::ensure_bank_key(&data_dir)?;
    let mut app = App::new(config, store, Arc::new(SystemClock), bank_key);
    app.set_registries(Arc::new(registries));
    app.admin_token = Some(admin_token.into());
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    let local = listener.local_addr()?;
    let base_url = format!("http://{local}");

    let mut out = std::io::stdout().lock();
    writeln!(out, "open131 listening on {base_url} (data directory {})", data_dir.display())?;
    writeln!(out, "admin token (for /admin/v1/...): {}", data_dir.join(demo::ADMIN_TOKEN_FILE_NAME).display())?;
    if demo.created {
        writeln!(
            out,
            "created demo project {:?}; its private key is {}",
            demo::DEMO_PROJECT_ID,
            demo.key_path.display()
        )?;
    }
    writeln!(out, "try it:\n{}", demo::example_request(&demo.key, &base_url)?)?;
    out.flush()?;
    drop(out);

    tracing::info!(%local, "serving");
    open131_server::run(listener, app, shutdown_signal()).await?;
    tracing::info!("stopped");
    drop(lock);
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
