//! gRPC server reflection as every Vox server serves it (v1 and v1alpha, for grpcurl and
//! other tools), listing only the services that server serves plus `grpc.health.v1.Health`,
//! though the descriptor set describes every Vox service.

use tonic_reflection::server::{v1, v1alpha};

/// The two reflection services for a server of `services` (full names, e.g.
/// `vox.fleet.v1.WorkerService`).
/// They also declare the server's methods to the request metrics
/// ([`vox_telemetry::requests::serve_methods`]), so those are named and no other path is.
pub fn services(
    services: &[&str],
) -> anyhow::Result<(
    v1::ServerReflectionServer<impl v1::ServerReflection>,
    v1alpha::ServerReflectionServer<impl v1alpha::ServerReflection>,
)> {
    let standard =
        ["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];
    let named: Vec<&str> = services.iter().copied().chain(standard).collect();
    vox_telemetry::requests::serve_methods(
        &[
            vox_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ],
        &named,
    );
    let builder = || {
        let mut b = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(vox_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name("grpc.health.v1.Health");
        for name in services {
            b = b.with_service_name(*name);
        }
        b
    };
    Ok((builder().build_v1()?, builder().build_v1alpha()?))
}
