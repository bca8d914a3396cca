//! A container's share of the node as the engine takes it: the GPUs by id (or, outside
//! a scheduler, by count), `nano_cpus` and the memory limit, from the plan's
//! [`ContainerLimits`](crate::plan::resources::ContainerLimits). The one place the
//! container runner's create options get their GPU, CPU and memory fields.
//!
//! It decides nothing: what the container may have was decided, and refused when it
//! asked for more than the scheduler gave, by `plan::resources`.

use crate::plan::resources::{ContainerLimits, GpuRequest};
use bollard::models::DeviceRequest;

/// The create options' resource fields.
#[derive(Debug, Default, PartialEq)]
pub struct EngineResources {
    /// `HostConfig.DeviceRequests`.
    pub device_requests: Option<Vec<DeviceRequest>>,
    /// `HostConfig.NanoCpus`.
    pub nano_cpus: Option<i64>,
    /// `HostConfig.Memory`, in bytes.
    pub memory: Option<i64>,
    /// `HostConfig.MemorySwap`: the same as the memory, so the limit is not doubled by
    /// swap (the engine's default allows as much swap again).
    pub memory_swap: Option<i64>,
}

/// The resource fields for `limits` (none: a plan without a container).
pub fn engine_resources(limits: Option<&ContainerLimits>) -> EngineResources {
    let Some(l) = limits else {
        return EngineResources::default();
    };
    let gpu = |count: Option<i64>, ids: Option<Vec<String>>| DeviceRequest {
        driver: Some(String::new()),
        count,
        device_ids: ids,
        capabilities: Some(vec![vec!["gpu".into()]]),
        ..Default::default()
    };
    let device_requests = match &l.gpus {
        GpuRequest::None => None,
        GpuRequest::Count(n) => Some(vec![gpu(Some(*n), None)]),
        GpuRequest::Ids(ids) => Some(vec![gpu(None, Some(ids.clone()))]),
    };
    let memory = l.memory_bytes.map(|b| i64::try_from(b).unwrap_or(i64::MAX));
    EngineResources {
        device_requests,
        nano_cpus: l.cpus.map(|c| (c * 1e9) as i64),
        memory,
        memory_swap: memory,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_gpus_go_by_id_and_the_limits_by_the_engines_units() {
        let r = engine_resources(Some(&ContainerLimits {
            gpus: GpuRequest::Ids(vec!["1".into(), "3".into()]),
            cpus: Some(1.0),
            memory_bytes: Some(256 << 20),
        }));
        let d = &r.device_requests.as_ref().unwrap()[0];
        assert_eq!(
            (d.count, d.device_ids.clone(), d.capabilities.clone()),
            (
                None,
                Some(vec!["1".to_string(), "3".to_string()]),
                Some(vec![vec!["gpu".to_string()]])
            )
        );
        assert_eq!(
            (r.nano_cpus, r.memory, r.memory_swap),
            (Some(1_000_000_000), Some(256 << 20), Some(256 << 20))
        );
    }

    #[test]
    fn no_gpu_and_no_limit_ask_for_nothing() {
        let r = engine_resources(Some(&ContainerLimits {
            gpus: GpuRequest::None,
            cpus: None,
            memory_bytes: None,
        }));
        assert_eq!(r, EngineResources::default());
    }
}
