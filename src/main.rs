//! The `tollgate` binary: command line → settings, tracing, and the run loop
//! until SIGTERM. (anyhow lives only here; the library has typed errors.)

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use tokio::net::TcpListener;
use tokio::sync::watch;

use tollgate::fdtable;
use tollgate::metrics::{Metrics, SourceLabels};
use tollgate::provider::files::FileSource;
use tollgate::provider::kubernetes::{self, status::Publish, KubeSettings};
use tollgate::proxy::forward::pool;
use tollgate::proxy::listener::{self, ConnSettings, ConnTracker};
use tollgate::proxy::{ProxySettings, ProxyState};
use tollgate::publisher::Publisher;
use tollgate::settings::{Cli, Command, LogFormat, RunArgs};
use tollgate::state::Health;
use tollgate::tls;

/// jemalloc instead of glibc's malloc: a 10,000-Ingress recompile spent a
/// quarter of its time in glibc's allocator (consolidating fastbins on a
/// fragmented heap); see docs/benchmarks.md.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main` (tikv-jemalloc-sys builds
/// jemalloc with the `_rjem_` prefix, so its `malloc_conf` has that name;
/// `_RJEM_MALLOC_CONF` in the environment still overrides). A background
/// thread returns freed pages on a timer: without it jemalloc purges only
/// while allocating, so a quiet process keeps the peak of its initial sync
/// or last recompile. One such thread (jemalloc starts one per CPU by
/// default), and dirty pages go back after 1 s instead of 10 s. One arena
/// per CPU (`percpu_arena`; a thread allocates from the arena of the CPU it
/// runs on) instead of four per CPU handed to threads in turn: each arena
/// keeps its own partly used pages of every size class, and the quick
/// start's eight threads each had one (0.6 MB of its memory). Workers still
/// allocate from their thread cache first, and arenas stay as many as
/// CPUs, so the data plane contends no more than with one arena per worker.
///
/// Sound: jemalloc reads this symbol as a `const char *` to a
/// NUL-terminated string; a `&'static u8` has the layout of that pointer,
/// and it points at the first byte of a static string that ends in NUL.
#[cfg(feature = "jemalloc")]
#[allow(unsafe_code)]
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: &u8 =
    &b"background_thread:true,max_background_threads:1,dirty_decay_ms:1000,percpu_arena:percpu\0"
        [0];

/// Log lines queued for the writer thread before new ones are dropped
/// (counted by tracing-appender). The default, 128,000, is a channel whose
/// every slot is written when it is created: 4 MB resident from the start,
/// a quarter of the quick start's memory. 16,384 lines are 512 kB and
/// still absorb a burst of one line per Ingress of a large cluster.
const LOG_BUFFER_LINES: usize = 16_384;

fn init_tracing(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_BUFFER_LINES)
        .finish(std::io::stdout());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // rustls warns per handshake about client quirks (an IP address as
        // SNI); at info that floods the log under load.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rustls=error"));
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
    // Before the first thread (tracing's writer, the runtime): see
    // tollgate::fdtable. Reported once tracing is up.
    let fds = match cli.command {
        Command::Run(_) | Command::Echo(_) => Some(fdtable::reserve(fdtable::RESERVE)),
        _ => None,
    };
    match cli.command {
        Command::Run(args) => run(args, fds),
        Command::Check(args) => {
            let _guard = init_tracing(LogFormat::Text);
            let code = tollgate::check::run(&args)?;
            std::process::exit(code);
        }
        Command::Rbac(args) => {
            print!(
                "{}",
                kubernetes::rbac_manifests(&args.name, &args.namespace, args.gateway_api)
            );
            Ok(())
        }
        Command::Crd => {
            print!(
                "{}",
                tollgate::crd::crd_yaml().context("serializing the CRD")?
            );
            Ok(())
        }
        Command::Version => {
            println!(
                "tollgate {} (revision {})",
                tollgate::build_info::VERSION,
                tollgate::build_info::REVISION
            );
            Ok(())
        }
        Command::Echo(args) => {
            let _guard = init_tracing(LogFormat::Text);
            report_fd_table(fds);
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(args.threads.max(1))
                .enable_all()
                .build()?
                .block_on(tollgate::echo::run(args.listen, args.fixed))?;
            Ok(())
        }
    }
}

/// Logs what [`fdtable::reserve`] did: a failure costs only latency.
fn report_fd_table(reserved: Option<std::io::Result<u64>>) {
    match reserved {
        Some(Ok(slots)) => {
            tracing::debug!(slots, fd_table = ?fdtable::size(), "file descriptor table reserved");
        }
        Some(Err(e)) => {
            tracing::warn!(error = %e, "could not grow the file descriptor table; connections may wait for it to grow later");
        }
        None => {}
    }
}

fn run(args: RunArgs, fds: Option<std::io::Result<u64>>) -> anyhow::Result<()> {
    if let Err(e) = args.validate() {
        anyhow::bail!(e);
    }
    let _guard = init_tracing(args.log_format);
    report_fd_table(fds);
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let metrics = Arc::new(Metrics::new().with_per_host(args.metrics_per_host));
    if args.access_log {
        install_access_log(&args, &metrics)?;
    }
    let health = Arc::new(Health::default());
    let mut publisher = Publisher::new(
        args.selection.compile_options(),
        metrics.clone(),
        health.clone(),
    );
    if let Some(config) = args.selection.global_rate_limit.store_config() {
        let store = tollgate::ratelimit::global::GlobalStore::start(
            config,
            metrics.global_rate_limit.clone(),
        )?;
        publisher.set_global_store(store);
    }
    let published = publisher.published();
    let inspect = publisher.inspect();

    // The control plane runs on its own thread: parsing, watching and
    // compiling never take a data-plane worker.
    let (stop_tx, stop_rx) = watch::channel(false);
    let control = spawn_control(&args, publisher, metrics.clone(), stop_rx)?;

    let state = Arc::new(ProxyState {
        published,
        settings: ProxySettings {
            connect_timeout: args.upstream_connect_timeout,
            response_timeout: args.upstream_response_timeout,
            upstream_idle_timeout: args.upstream_idle_timeout,
            trusted_proxies: args.trusted_proxies.clone(),
            access_log: args.access_log,
            https_redirect_port: args.https_redirect_port,
            hsts: args.hsts.clone(),
            max_header_bytes: args.max_header_bytes,
        },
        metrics: metrics.clone(),
        auth_client: match tollgate::auth::external::client::AuthClient::new() {
            Ok(client) => Some(client),
            Err(e) => {
                tracing::warn!(error = %e, "no client for auth-url; routes using it answer 500");
                None
            }
        },
    });
    let conn_settings = ConnSettings {
        header_timeout: args.client_header_timeout,
        idle_timeout: args.idle_timeout,
        max_header_bytes: args.max_header_bytes,
        proxy_protocol: args.proxy_protocol,
        http2_max_concurrent_streams: args.http2_max_concurrent_streams,
        http2_max_control_frames: args.http2_max_control_frames,
        http1_fast_path: args.http1_fast_path,
    };

    // Bind everything before starting anything, so a taken port fails fast.
    let http_listeners = (0..threads)
        .map(|_| bind(args.http_addr, threads > 1))
        .collect::<std::io::Result<Vec<_>>>()
        .with_context(|| format!("binding --http-addr {}", args.http_addr))?;
    let https_listeners = (0..threads)
        .map(|_| bind(args.https_addr, threads > 1))
        .collect::<std::io::Result<Vec<_>>>()
        .with_context(|| format!("binding --https-addr {}", args.https_addr))?;
    let default_certificate = tls::server::generate_default_certificate().context("TLS")?;
    let tls_acceptor =
        tls::server::Acceptor::new(state.published.clone(), default_certificate).context("TLS")?;
    let admin_listener = bind(args.admin_addr, false)
        .with_context(|| format!("binding --admin-addr {}", args.admin_addr))?;
    let admission = match (args.admission_addr, &args.admission_certificate) {
        (Some(addr), Some(secret)) => {
            let listener =
                bind(addr, false).with_context(|| format!("binding --admission-addr {addr}"))?;
            let certificate = Arc::new(tollgate::admission::AdmissionCertificate::new(
                inspect.clone(),
                secret.clone(),
            ));
            let config = tollgate::admission::server::server_config(certificate)?;
            Some((listener, config))
        }
        _ => None,
    };

    let (drain_tx, drain_rx) = watch::channel(false);
    let tracker = Arc::new(ConnTracker::default());
    let grace = args.shutdown_grace;
    let upstream_idle = args.upstream_idle_timeout;

    // The data plane: one single-threaded runtime per worker thread, each
    // accepting on its own SO_REUSEPORT socket (shared-nothing, like nginx
    // workers): a connection, its requests and its upstream connections
    // stay on one thread.
    let mut workers = Vec::with_capacity(threads);
    for (i, (std_listener, std_tls_listener)) in
        http_listeners.into_iter().zip(https_listeners).enumerate()
    {
        let (state, settings, tracker, drain) = (
            state.clone(),
            conn_settings.clone(),
            tracker.clone(),
            drain_rx.clone(),
        );
        let acceptor = tls_acceptor.clone();
        let worker = std::thread::Builder::new()
            .name(format!("tollgate-worker-{i}"))
            .spawn(move || {
                // An idle worker hands its buffered access-log lines over.
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .on_thread_park(tollgate::access_log::flush)
                    .build()?;
                let result = rt.block_on(async move {
                    let listener = TcpListener::from_std(std_listener)?;
                    let tls_listener = TcpListener::from_std(std_tls_listener)?;
                    let sweeper = tokio::spawn(async move {
                        let mut tick = tokio::time::interval(
                            (upstream_idle / 2).max(Duration::from_millis(100)),
                        );
                        loop {
                            tick.tick().await;
                            pool::sweep(upstream_idle);
                            tollgate::proxy::fastpath::upstream::sweep(upstream_idle);
                        }
                    });
                    tokio::join!(
                        listener::serve(
                            listener,
                            state.clone(),
                            settings.clone(),
                            None,
                            tracker.clone(),
                            drain.clone()
                        ),
                        listener::serve(
                            tls_listener,
                            state,
                            settings,
                            Some(acceptor),
                            tracker.clone(),
                            drain
                        ),
                    );
                    // Connections of this worker run on this runtime: keep it
                    // alive until every connection has drained or grace ends.
                    let _ = tokio::time::timeout(grace, tracker.wait_idle()).await;
                    sweeper.abort();
                    std::io::Result::Ok(())
                });
                tollgate::access_log::flush();
                result
            })?;
        workers.push(worker);
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the admin runtime")?;
    rt.block_on(async {
        let admin = TcpListener::from_std(admin_listener)?;
        let (admin_stop_tx, admin_stop_rx) = watch::channel(false);
        let admin_task = tokio::spawn(tollgate::admin::serve(admin, health.clone(), metrics.clone(), inspect.clone(), admin_stop_rx.clone()));
        let admission_task = match admission {
            Some((listener, config)) => Some(tokio::spawn(tollgate::admission::serve(
                TcpListener::from_std(listener)?,
                config,
                inspect.clone(),
                admin_stop_rx,
            ))),
            None => None,
        };
        // Every second: limiter state of clients whose budget is full again
        // is dropped (memory stays bounded by recently active clients), and
        // retry budgets age.
        let limits = state.published.clone();
        let pruner = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                limits.load().housekeeping();
            }
        });
        health.listeners_up.store(true, Ordering::Release);
        tracing::info!(http = %args.http_addr, https = %args.https_addr, admin = %args.admin_addr, threads, "tollgate listening");

        shutdown_signal().await;
        pruner.abort();
        tracing::info!(grace = ?grace, open = tracker.open(), "draining");
        // Readiness fails first; the admin listener keeps answering (503)
        // until the end so probes see the drain.
        health.draining.store(true, Ordering::Release);
        let _ = drain_tx.send(true);
        if tokio::time::timeout(grace, tracker.wait_idle()).await.is_err() {
            tracing::warn!(open = tracker.open(), "shutdown grace elapsed with connections still open");
        }
        let _ = admin_stop_tx.send(true);
        let _ = admin_task.await;
        if let Some(task) = admission_task {
            let _ = task.await;
        }
        anyhow::Ok(())
    })?;
    for worker in workers {
        match worker.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "worker ended with an error"),
            Err(_) => tracing::error!("worker thread panicked"),
        }
    }
    tollgate::access_log::sync(Duration::from_secs(2));
    let _ = stop_tx.send(true);
    let _ = control.join();
    tracing::info!("stopped");
    Ok(())
}

/// Starts the access-log writer: the custom format, else JSON with
/// `--log-format json`, else ingress-nginx's `upstreaminfo`.
fn install_access_log(args: &RunArgs, metrics: &Metrics) -> anyhow::Result<()> {
    use tollgate::access_log::{self, format::UPSTREAMINFO, Config, Format, Template};
    let format = match (&args.access_log_format, args.log_format) {
        (Some(text), _) => Format::Text(Template::parse(text)?),
        (None, LogFormat::Json) => Format::Json,
        (None, LogFormat::Text) => Format::Text(Template::parse(UPSTREAMINFO)?),
    };
    let config = Config {
        format,
        skip: args.access_log_skip_paths.clone(),
    };
    access_log::install(config, metrics.observe.access_log_dropped.clone())
        .context("starting the access-log writer")
}

/// Starts the control plane: the file watcher with `--manifests`, else
/// Kubernetes mode (which must connect to the API first: a missing
/// configuration fails start-up here, with a clear error).
fn spawn_control(
    args: &RunArgs,
    mut publisher: Publisher,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let builder = std::thread::Builder::new().name("tollgate-control".into());
    if !args.selection.manifests.is_empty() {
        let source = FileSource::new(
            args.selection.manifests.clone(),
            args.selection.watch_namespaces.clone(),
        );
        let debounce = args.reload_debounce;
        return Ok(builder.spawn(move || {
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
                    publisher.apply(snapshot, &diagnostics);
                },
                || *stop.borrow(),
            )
        })?);
    }
    let publish = match (&args.publish_service, args.publish_address.is_empty()) {
        (Some(service), _) => Publish::Service(service.clone()),
        (None, false) => Publish::Addresses(args.publish_address.clone()),
        (None, true) => Publish::Nothing,
    };
    let settings = KubeSettings {
        namespaces: args.selection.watch_namespaces.clone(),
        gateway_api: args.selection.gateway_api,
        debounce: args.reload_debounce,
        publish,
        election_id: args.election_id.clone(),
        election_namespace: std::env::var("POD_NAMESPACE")
            .ok()
            .filter(|s| !s.is_empty()),
        identity: identity(),
        lease_duration: args.election_lease_duration,
        configmap_namespace: args
            .selection
            .configmap
            .as_ref()
            .map(|k| k.namespace.to_string()),
        event_republish_interval: args.event_republish_interval,
    };
    let (connected_tx, connected_rx) = std::sync::mpsc::channel();
    let handle = builder.spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = connected_tx.send(Err(anyhow::anyhow!(e)));
                return;
            }
        };
        rt.block_on(async move {
            let client = match kubernetes::connect().await {
                Ok(client) => client,
                Err(e) => {
                    let _ = connected_tx.send(Err(anyhow::anyhow!(e)));
                    return;
                }
            };
            tracing::info!(namespace = %client.default_namespace(), "Kubernetes mode: watching the API server");
            let _ = connected_tx.send(Ok(()));
            kubernetes::run(client, settings, &mut publisher, metrics, stop).await;
        });
    })?;
    match connected_rx.recv() {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => Err(e),
        Err(_) => anyhow::bail!("the control-plane thread ended before connecting"),
    }
}

/// This replica's name in the leader Lease and Events: the pod name (or
/// host name) plus a random suffix, so two processes never share one.
fn identity() -> String {
    let base = std::env::var("POD_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "tollgate".into());
    format!("{base}_{:08x}", fastrand::u32(..))
}

/// A non-blocking listening socket; with `reuse_port`, one of several
/// sockets sharing the address (the kernel spreads connections over them).
/// `[::]` is dual-stack, falling back to `0.0.0.0` without IPv6.
fn bind(addr: SocketAddr, reuse_port: bool) -> std::io::Result<std::net::TcpListener> {
    tollgate::proxy::bind::bind(addr, reuse_port)
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
