//! `tracegate run`: opens the queue, starts the publisher, the operator endpoints and one task
//! per source, tells systemd it is ready, and stops cleanly on SIGTERM/SIGINT (sources first,
//! then the queue commits what it holds, then the publisher says offline).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracegate_drivers::{ContextFeed, DeviceLosses, DeviceState, Shutdown, Sink};

use crate::config::{Config, DriverConfig};
use crate::context::ContextBook;
use crate::ops::metrics::{Metrics, SourceLabel};
use crate::ops::state::{AgentState, BrokerState, SourceInfo};
use crate::ops::{notify, server};
use crate::process::Processor;
use crate::publish::Publisher;
use crate::queue;

/// How many readings of one source may wait for processing before its driver is held back.
const SINK_CAPACITY: usize = 64;

/// Runs the agent until a stop signal.
pub async fn run(config: Config) -> anyhow::Result<()> {
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let (store, _queue_lock, _) =
        queue::recover::open_for_run(&config.store.path, config.limits())?;
    let stats = store.stats()?;
    tracing::info!(
        path = %config.store.path.display(),
        queued = stats.depth,
        retained = stats.retained,
        next_seq = stats.next_seq,
        "queue open"
    );
    let context = Arc::new(ContextBook::new(store.load_context()?));
    let metrics = Arc::new(Metrics::new());
    let (queue, writer) = queue::spawn(
        store,
        config.store.commit_window,
        config.store.commit_batch,
        metrics.clone(),
        config
            .confirm
            .enabled
            .then_some(config.confirm.republish_after),
    );

    let (stop_sources, sources_shutdown) = Shutdown::new();
    let prefix = config.mqtt.topic_prefix(&config.agent);
    let mut drivers = JoinSet::new();
    let mut processors = JoinSet::new();
    let mut infos = Vec::new();
    for source in &config.sources {
        let (sink, submissions) = Sink::channel(SINK_CAPACITY);
        let last_event_ms = Arc::new(AtomicI64::new(0));
        infos.push(SourceInfo {
            id: source.common.id.clone(),
            kind: source.kind.clone(),
            station: source.station().to_string(),
            device: sink.device_state(),
            last_event_ms: last_event_ms.clone(),
        });
        tokio::spawn(count_device_losses(
            metrics.clone(),
            source.common.id.clone(),
            sink.device_state(),
            sink.device_losses(),
        ));
        let processor = Processor::new(
            &config.agent,
            &prefix,
            source,
            metrics.clone(),
            last_event_ms,
            context.clone(),
        );
        processors.spawn(processor.run(submissions, queue.clone()));
        tokio::spawn(feed_context(
            context.clone(),
            source.station().to_string(),
            sink.context_feed(),
            sources_shutdown.clone(),
        ));
        let id = source.common.id.clone();
        let shutdown = sources_shutdown.clone();
        match source.driver.clone() {
            DriverConfig::Scanner(c) => {
                drivers.spawn(tracegate_drivers::scanner::run(c, id, sink, shutdown))
            }
            DriverConfig::Modbus(c) => {
                drivers.spawn(tracegate_drivers::modbus::run(c, id, sink, shutdown))
            }
            #[cfg(feature = "opcua")]
            DriverConfig::Opcua(c) => {
                drivers.spawn(tracegate_drivers::opcua::run(c, id, sink, shutdown))
            }
            DriverConfig::Simulator(c) => {
                drivers.spawn(crate::simulator::run(c, id, sink, shutdown))
            }
        };
    }
    let state = Arc::new(AgentState {
        agent: config.agent.id.clone(),
        site: config.agent.site.clone(),
        line: config.agent.line.clone(),
        config_hash: config.hash.clone(),
        started: Instant::now(),
        started_at: SystemTime::now(),
        metrics,
        broker: BrokerState::default(),
        sources: infos,
        queue: queue.clone(),
        ready: AtomicBool::new(false),
        context,
        context_config: config.context.clone(),
        confirm_alarm_after: config.confirm.enabled.then_some(config.confirm.alarm_after),
    });
    drop(queue);

    let (stop_ops, ops_shutdown) = Shutdown::new();
    let mut ops = JoinSet::new();
    let socket = config.control_socket();
    let control = server::bind_control(&socket)
        .with_context(|| format!("control socket {}", socket.display()))?;
    ops.spawn(server::serve_control(
        control,
        state.clone(),
        ops_shutdown.clone(),
    ));
    if let Some(listen) = &config.ops.listen {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("ops.listen {listen}"))?;
        tracing::info!(%listen, "serving /metrics and /health");
        ops.spawn(server::serve_tcp(
            listener,
            state.clone(),
            ops_shutdown.clone(),
        ));
    }
    ops.spawn(notify::watchdog(state.clone(), ops_shutdown.clone()));

    let (stop_publisher, publisher_shutdown) = Shutdown::new();
    let publisher = Publisher::new(&config, state.clone()).context("MQTT setup")?;
    let publisher = tokio::spawn(publisher.run(publisher_shutdown));

    state.ready.store(true, Ordering::Relaxed);
    notify::ready(&format!(
        "queue {} events; {} sources",
        stats.depth,
        config.sources.len()
    ));
    tracing::info!(
        agent = %config.agent.id,
        sources = config.sources.len(),
        version = env!("CARGO_PKG_VERSION"),
        revision = crate::ops::state::REVISION,
        control = %socket.display(),
        "tracegate running"
    );
    match crate::ops::footprint::release_startup_pages() {
        Ok(bytes) => tracing::debug!(bytes, "start-up's pages of the binary handed back"),
        Err(e) => tracing::debug!(error = %e, "start-up's pages of the binary stay resident"),
    }

    wait_for_stop_signal().await;
    notify::stopping();
    tracing::info!("stopping: sources first, then the queue, then the publisher");
    state.ready.store(false, Ordering::Relaxed);
    stop_sources.trigger();
    while drivers.join_next().await.is_some() {}
    while processors.join_next().await.is_some() {}
    // The publisher gets a moment to deliver what is in flight before it says offline.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop_publisher.trigger();
    let _ = publisher.await;
    stop_ops.trigger();
    while ops.join_next().await.is_some() {}
    drop(state);
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    let _ = std::fs::remove_file(&socket);
    tracing::info!("stopped");
    Ok(())
}

/// Keeps a source's sink told of the line context in effect for its station, so drivers that
/// can show it on the line (PLC tags) write it there. Ends when the agent stops.
async fn feed_context(
    book: Arc<ContextBook>,
    station: String,
    feed: ContextFeed,
    mut stop: Shutdown,
) {
    let mut revisions = book.watch();
    loop {
        feed.set(book.current().for_station(&station));
        tokio::select! {
            changed = revisions.changed() => if changed.is_err() { return },
            _ = stop.wait() => return,
        }
    }
}

/// Keeps `tracegate_device_disconnects_total` of a source equal to the losses its sink counted,
/// catching up at each device state change (the count moves before the change is seen). The
/// counter exists from the start, at 0. Ends when the source's driver has stopped.
async fn count_device_losses(
    metrics: Arc<Metrics>,
    source: String,
    mut state: watch::Receiver<DeviceState>,
    losses: DeviceLosses,
) {
    let counter = metrics
        .device_disconnects
        .get_or_create(&SourceLabel {
            source: source.into(),
        })
        .clone();
    let mut counted = 0;
    loop {
        let ended = state.changed().await.is_err();
        let total = losses.get();
        counter.inc_by(total - counted);
        counted = total;
        if ended {
            return;
        }
    }
}

async fn wait_for_stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
