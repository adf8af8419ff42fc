//! The `tollgate` binary: command line → settings, tracing, and the run loop
//! until SIGTERM. (anyhow lives only here; the library has typed errors.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use tokio::net::TcpListener;
use tokio::sync::watch;

use tollgate::metrics::{Metrics, SourceLabels};
use tollgate::provider::files::FileSource;
use tollgate::proxy::listener::{self, ConnSettings, ConnTracker};
use tollgate::proxy::{ProxySettings, ProxyState};
use tollgate::runtime::{Health, Runtime};
use tollgate::settings::{Cli, Command, LogFormat, RunArgs};

/// mimalloc instead of glibc malloc: hyper allocates per request (header
/// maps, buffers), and mimalloc's thread-local free lists cut that cost
/// (measured with callgrind, see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_tracing(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking(std::io::stdout());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(true)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
    guard
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run(args),
        Command::Check(args) => {
            let _guard = init_tracing(LogFormat::Text);
            let code = tollgate::check::run(&args)?;
            std::process::exit(code);
        }
        Command::Echo(args) => {
            let _guard = init_tracing(LogFormat::Text);
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(args.threads.max(1))
                .enable_all()
                .build()?
                .block_on(tollgate::echo::run(args.listen, args.fixed))?;
            Ok(())
        }
    }
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    if let Err(e) = args.validate() {
        anyhow::bail!(e);
    }
    let _guard = init_tracing(args.log_format);
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("tollgate-worker")
        .enable_all()
        .build()
        .context("starting the async runtime")?;

    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    let mut runtime = Runtime::new(
        args.selection.compile_options(),
        metrics.clone(),
        health.clone(),
    );
    let published = runtime.published();

    // The control plane runs on its own thread: parsing and compiling never
    // take a data-plane worker.
    let stop = Arc::new(AtomicBool::new(false));
    let source = FileSource::new(
        args.selection.manifests.clone(),
        args.selection.watch_namespaces.clone(),
    );
    let control = {
        let stop = stop.clone();
        let metrics = metrics.clone();
        let debounce = args.reload_debounce;
        std::thread::Builder::new()
            .name("tollgate-control".into())
            .spawn(move || {
                source.watch(
                    debounce,
                    |snapshot, diagnostics| {
                        for d in diagnostics.iter().filter(|d| d.kind == "File") {
                            metrics
                                .source_errors
                                .get_or_create(&SourceLabels {
                                    source: d.name.clone(),
                                })
                                .inc();
                        }
                        runtime.apply(snapshot, &diagnostics);
                    },
                    || stop.load(Ordering::Relaxed),
                )
            })?
    };

    let state = Arc::new(ProxyState {
        published,
        settings: ProxySettings {
            connect_timeout: args.upstream_connect_timeout,
            response_timeout: args.upstream_response_timeout,
            upstream_idle_timeout: args.upstream_idle_timeout,
            trusted_proxies: args.trusted_proxies.clone(),
            access_log: args.access_log,
        },
        metrics: metrics.clone(),
    });
    let conn_settings = ConnSettings {
        header_timeout: args.client_header_timeout,
        idle_timeout: args.idle_timeout,
        max_header_bytes: args.max_header_bytes,
    };

    let result = rt.block_on(async {
        let (drain_tx, drain_rx) = watch::channel(false);
        let tracker = Arc::new(ConnTracker::default());
        let http = TcpListener::bind(args.http_addr)
            .await
            .with_context(|| format!("binding --http-addr {}", args.http_addr))?;
        let admin = TcpListener::bind(args.admin_addr)
            .await
            .with_context(|| format!("binding --admin-addr {}", args.admin_addr))?;
        tracing::info!(http = %args.http_addr, admin = %args.admin_addr, threads, "tollgate listening");
        let admin_task = tokio::spawn(tollgate::admin::serve(admin, health.clone(), metrics.clone(), drain_rx.clone()));
        let http_task = tokio::spawn(listener::serve(
            http,
            state.clone(),
            conn_settings.clone(),
            "http",
            tracker.clone(),
            drain_rx.clone(),
        ));
        health.listeners_up.store(true, Ordering::Release);

        shutdown_signal().await;
        tracing::info!(grace = ?args.shutdown_grace, open = tracker.open(), "draining");
        health.draining.store(true, Ordering::Release);
        let _ = drain_tx.send(true);
        let _ = http_task.await;
        if tokio::time::timeout(args.shutdown_grace, tracker.wait_idle()).await.is_err() {
            tracing::warn!(open = tracker.open(), "shutdown grace elapsed with connections still open");
        }
        admin_task.abort();
        anyhow::Ok(())
    });
    stop.store(true, Ordering::Relaxed);
    let _ = control.join();
    rt.shutdown_timeout(Duration::from_millis(100));
    tracing::info!("stopped");
    result
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
