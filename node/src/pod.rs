//! How a node finds its Raft id from a StatefulSet pod name.

use raft::NodeId;

/// The ordinal of a StatefulSet pod name such as `raftkv-2`, as a Raft id. Ids start
/// at 1 so that id 0 never appears on the wire by accident.
pub fn node_id_from_pod_name(pod_name: &str) -> Option<NodeId> {
    let (_, ordinal) = pod_name.rsplit_once('-')?;
    if ordinal.is_empty() || !ordinal.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    ordinal.parse::<NodeId>().ok()?.checked_add(1)
}

#[cfg(test)]
mod tests {
    use super::node_id_from_pod_name;

    #[test]
    fn statefulset_ordinal_becomes_id_plus_one() {
        assert_eq!(node_id_from_pod_name("raftkv-0"), Some(1));
        assert_eq!(node_id_from_pod_name("my-raftkv-12"), Some(13));
        assert_eq!(node_id_from_pod_name("raftkv"), None);
        assert_eq!(node_id_from_pod_name("raftkv-"), None);
        assert_eq!(node_id_from_pod_name("raftkv-x1"), None);
    }
}
