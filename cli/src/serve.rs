//! `murmur serve`: the OpenAI-compatible server in the foreground.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use clap::Args;
use murmur_core::llm::Engine;
use murmur_core::server::{Server, ServerConfig};

use super::llm::{ModelArgs, RemoteArgs};

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    remote: RemoteArgs,
    /// The address to listen on: loopback by default, so only this computer can connect.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
    /// The port (0: any free one; the address is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Require this key from every client, as `Authorization: Bearer KEY`.
    #[arg(long, env = "MURMUR_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Let web pages from this origin call the server (CORS), e.g. http://localhost:3000.
    #[arg(long, value_name = "ORIGIN")]
    cors: Option<String>,
}

impl ServeArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let mut engine = Engine::start(self.remote.engine(&self.model))?;
        let model_id = match &mut engine {
            Engine::Remote(remote) => remote.resolve_model()?,
            Engine::Local(_) => self.model.id(),
        };
        if !self.host.is_loopback() && self.api_key.is_none() {
            eprintln!("warning: serving on {} without --api-key: anyone who can reach this address can use the model", self.host);
        }
        let device = engine.device();
        let server = Server::start(
            ServerConfig {
                addr: SocketAddr::new(self.host, self.port),
                model_id: model_id.clone(),
                api_key: self.api_key,
                cors_origin: self.cors,
            },
            engine,
        )?;
        eprintln!("serving {model_id} ({device}) at http://{}/v1 — press Ctrl+C to stop", server.addr());
        server.wait();
        Ok(())
    }
}
