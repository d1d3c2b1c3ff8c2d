//! The error codes a response carries, for RequestMetrics ErrorsPerSec (Kafka counts every
//! code in a response, NONE included, as `AbstractResponse.errorCounts` does).
use kafka_protocol::messages::ResponseKind;

/// Calls `f(code, count)` for the error codes in a response.
pub fn error_codes(response: &ResponseKind, mut f: impl FnMut(i16, u64)) {
    let mut counts: Vec<(i16, u64)> = Vec::new();
    let mut add = |code: i16| match counts.iter_mut().find(|(c, _)| *c == code) {
        Some((_, n)) => *n += 1,
        None => counts.push((code, 1)),
    };
    match response {
        ResponseKind::Produce(r) => r.responses.iter().flat_map(|t| &t.partition_responses).for_each(|p| add(p.error_code)),
        ResponseKind::Fetch(r) => {
            add(r.error_code);
            r.responses.iter().flat_map(|t| &t.partitions).for_each(|p| add(p.error_code));
        }
        ResponseKind::ListOffsets(r) => r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| add(p.error_code)),
        ResponseKind::Metadata(r) => {
            r.topics.iter().for_each(|t| add(t.error_code));
            r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| add(p.error_code));
        }
        ResponseKind::ApiVersions(r) => add(r.error_code),
        ResponseKind::CreateTopics(r) => r.topics.iter().for_each(|t| add(t.error_code)),
        ResponseKind::DeleteTopics(r) => r.responses.iter().for_each(|t| add(t.error_code)),
        ResponseKind::CreatePartitions(r) => r.results.iter().for_each(|t| add(t.error_code)),
        ResponseKind::DescribeConfigs(r) => r.results.iter().for_each(|t| add(t.error_code)),
        ResponseKind::IncrementalAlterConfigs(r) => r.responses.iter().for_each(|t| add(t.error_code)),
        ResponseKind::DescribeCluster(r) => add(r.error_code),
        ResponseKind::InitProducerId(r) => add(r.error_code),
        ResponseKind::OffsetForLeaderEpoch(r) => r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| add(p.error_code)),
        ResponseKind::FindCoordinator(r) => {
            if r.coordinators.is_empty() {
                add(r.error_code)
            } else {
                r.coordinators.iter().for_each(|c| add(c.error_code))
            }
        }
        ResponseKind::JoinGroup(r) => add(r.error_code),
        ResponseKind::SyncGroup(r) => add(r.error_code),
        ResponseKind::Heartbeat(r) => add(r.error_code),
        ResponseKind::LeaveGroup(r) => {
            add(r.error_code);
            r.members.iter().for_each(|m| add(m.error_code));
        }
        ResponseKind::OffsetCommit(r) => r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| add(p.error_code)),
        ResponseKind::OffsetFetch(r) => {
            add(r.error_code);
            r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| add(p.error_code));
            r.groups.iter().for_each(|g| add(g.error_code));
        }
        ResponseKind::ListGroups(r) => add(r.error_code),
        ResponseKind::DescribeGroups(r) => r.groups.iter().for_each(|g| add(g.error_code)),
        ResponseKind::DeleteGroups(r) => r.results.iter().for_each(|g| add(g.error_code)),
        ResponseKind::OffsetDelete(r) => {
            add(r.error_code);
            r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| add(p.error_code));
        }
        _ => {}
    }
    for (code, n) in counts {
        f(code, n);
    }
}
