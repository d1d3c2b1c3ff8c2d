//! Prints docs/metrics.md from the metric catalogue.
fn main() {
    print!("{}", lantern_broker::metrics::docs::metrics_markdown());
}
