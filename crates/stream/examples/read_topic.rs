//! Debug: count the records of a topic. `cargo run -p epitrace-stream --example read_topic -- BROKERS TOPIC`
#![allow(clippy::print_stdout, clippy::unwrap_used, missing_docs)]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let cfg = epitrace_stream::KafkaConfig::for_brokers(args[1].clone());
    let recs =
        epitrace_stream::read::read_to_end(&cfg, &args[2], std::time::Duration::from_secs(20));
    println!("{:?}", recs.map(|r| r.len()));
}
