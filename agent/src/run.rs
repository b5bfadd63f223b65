//! `tracegate run`: opens the queue, starts the publisher and one task per source, and stops
//! cleanly on SIGTERM/SIGINT (sources first, then the queue commits what it holds, then the
//! publisher says offline).

use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinSet;
use tracegate_drivers::{Shutdown, Sink};

use crate::config::{Config, DriverConfig};
use crate::process::Processor;
use crate::publish::Publisher;
use crate::queue::{self, Store};

/// How many readings of one source may wait for processing before its driver is held back.
const SINK_CAPACITY: usize = 64;

/// Runs the agent until a stop signal.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let limits = config.store.limits();
    let store = Store::open(&config.store.path, limits)?;
    let stats = store.stats()?;
    tracing::info!(
        path = %config.store.path.display(),
        queued = stats.depth,
        next_seq = stats.next_seq,
        "queue open"
    );
    let (queue, writer) =
        queue::spawn(store, config.store.commit_window, config.store.commit_batch);

    let (stop_publisher, publisher_shutdown) = Shutdown::new();
    let publisher = Publisher::new(&config, queue.clone()).context("MQTT setup")?;
    let publisher = tokio::spawn(publisher.run(publisher_shutdown));

    let (stop_sources, sources_shutdown) = Shutdown::new();
    let prefix = config.mqtt.topic_prefix(&config.agent);
    let mut drivers = JoinSet::new();
    let mut processors = JoinSet::new();
    for source in &config.sources {
        let (sink, submissions) = Sink::channel(SINK_CAPACITY);
        let processor = Processor::new(&config.agent, &prefix, source);
        processors.spawn(processor.run(submissions, queue.clone()));
        let id = source.common.id.clone();
        let shutdown = sources_shutdown.clone();
        match source.driver.clone() {
            DriverConfig::Scanner(c) => {
                drivers.spawn(tracegate_drivers::scanner::run(c, id, sink, shutdown))
            }
            DriverConfig::Simulator(c) => {
                drivers.spawn(crate::simulator::run(c, id, sink, shutdown))
            }
        };
    }
    drop(queue);
    tracing::info!(
        agent = %config.agent.id,
        sources = config.sources.len(),
        version = env!("CARGO_PKG_VERSION"),
        "tracegate running"
    );

    wait_for_stop_signal().await;
    tracing::info!("stopping: sources first, then the queue, then the publisher");
    stop_sources.trigger();
    while drivers.join_next().await.is_some() {}
    while processors.join_next().await.is_some() {}
    // The publisher gets a moment to deliver what is in flight before it says offline.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop_publisher.trigger();
    let _ = publisher.await;
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    tracing::info!("stopped");
    Ok(())
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
