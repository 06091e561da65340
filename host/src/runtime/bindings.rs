//! The `connector` world's bindings, generated once here; the rest of the host
//! uses the short list re-exported below.

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "connector",
        // Every import returns `wasmtime::Result<…>`: an `Err` traps (a host
        // fault or a sandbox limit, which the guest must not see or handle),
        // the inner result is what the guest sees.
        imports: { default: trappable },
    });
}

pub use generated::Connector;
pub use generated::ConnectorPre;
pub use generated::incsync::connector::host::Host as HostImports;
pub use generated::incsync::connector::types::{
    CellKind, Column, DataType, DestinationError, Error as ConnectorError, Host as TypesHost,
    HttpError, LogLevel, Method, Request, Response, RowBatch, Table,
};
