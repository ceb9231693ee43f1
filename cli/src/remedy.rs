//! What the command line adds to the core's errors: the flag or command that fixes them. The
//! core says what went wrong; each front end says what to do about it in its own terms.

use murmur_core::assistant::AssistantError;
use murmur_core::llm::LlmError;
use murmur_core::server::ServerError;

/// The CLI's remedy for `e` (or any error in its chain), if it has one.
pub fn remedy(e: &anyhow::Error) -> Option<&'static str> {
    e.chain().find_map(|cause| {
        let llm = cause.downcast_ref::<LlmError>().or(match cause.downcast_ref::<AssistantError>() {
            Some(AssistantError::Llm(e)) => Some(e),
            _ => None,
        });
        if let Some(e) = llm {
            return match e {
                LlmError::Open { .. } => Some("run `murmur models fetch`, or pass --model PATH"),
                LlmError::NoGpu(_) => Some("use --backend cpu (or auto)"),
                _ => None,
            };
        }
        match cause.downcast_ref::<ServerError>()? {
            ServerError::Bind { .. } => Some("pick another port with --port"),
            ServerError::Origin(_) => Some("--cors takes one origin, such as http://localhost:3000"),
            _ => None,
        }
    })
}
