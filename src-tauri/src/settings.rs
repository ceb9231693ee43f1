//! The user's settings, kept as JSON in the app's config directory.

use std::path::{Path, PathBuf};

use murmur_core::assistant::{TurnSettings, DEFAULT_SYSTEM};
use murmur_core::llm::{BackendChoice, RemoteConfig, Sampling};
use murmur_core::models::DEFAULT_STT;
use murmur_core::speech::DEFAULT_LANGUAGE;
use murmur_core::tts::{DEFAULT_RATE, DEFAULT_VOICE};

/// Hold-to-talk shortcut unless the user picks another.
pub const DEFAULT_HOTKEY: &str = "Ctrl+Alt+Space";
/// The quick-query popup's shortcut unless the user picks another.
pub const DEFAULT_QUICK_HOTKEY: &str = "Ctrl+Alt+Q";

/// The OpenAI API's port unless the user picks another.
pub const DEFAULT_SERVE_PORT: u16 = 8080;

/// What the settings pane edits.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, specta::Type)]
#[serde(default)]
pub struct Settings {
    /// A GGUF model file; `None`: the default model.
    pub model: Option<PathBuf>,
    /// Which kernels run the model.
    pub backend: BackendChoice,
    /// Speak replies aloud.
    pub voice_output: bool,
    /// The voice (`piper:joe`, `espeak:en-us`).
    pub voice: String,
    /// How fast it speaks, words per minute.
    pub voice_rate: u32,
    /// The speech model (`tiny.en`, `base`).
    pub stt: String,
    /// The language a multilingual speech model hears (`en`, …, `auto`).
    pub stt_language: String,
    /// The hold-to-talk shortcut.
    pub hotkey: String,
    /// The shortcut that opens the quick-query popup.
    pub quick_hotkey: String,
    /// Sampling temperature.
    pub temperature: f32,
    /// The system prompt.
    pub system_prompt: String,
    /// An OpenAI-compatible server that answers instead of the local model; `None`: the local
    /// model.
    pub remote_url: Option<String>,
    /// The model to ask that server for; `None`: the first one it lists.
    pub remote_model: Option<String>,
    /// That server's API key.
    pub remote_api_key: Option<String>,
    /// Serve the OpenAI API to other apps on this computer (loopback only).
    pub serve_api: bool,
    /// The port the OpenAI API listens on.
    pub serve_port: u16,
    /// Light, dark, or as the system says.
    pub theme: Theme,
    /// The microphone; `None`: the system's default.
    pub input_device: Option<String>,
    /// The speaker; `None`: the system's default.
    pub output_device: Option<String>,
}

/// The window's colours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, specta::Type)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    /// As the system's appearance setting says (`prefers-color-scheme`).
    #[default]
    System,
    /// Light.
    Light,
    /// Dark.
    Dark,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            model: None,
            backend: BackendChoice::Auto,
            voice_output: true,
            voice: DEFAULT_VOICE.into(),
            voice_rate: DEFAULT_RATE,
            stt: DEFAULT_STT.into(),
            stt_language: DEFAULT_LANGUAGE.into(),
            hotkey: DEFAULT_HOTKEY.into(),
            quick_hotkey: DEFAULT_QUICK_HOTKEY.into(),
            temperature: Sampling::default().temperature,
            system_prompt: DEFAULT_SYSTEM.into(),
            remote_url: None,
            remote_model: None,
            remote_api_key: None,
            serve_api: false,
            serve_port: DEFAULT_SERVE_PORT,
            theme: Theme::System,
            input_device: None,
            output_device: None,
        }
    }
}

impl Settings {
    /// The settings stored at `path`; defaults when there are none (or they cannot be read,
    /// which is logged: a damaged file must not keep the app from starting).
    pub fn load(path: &Path) -> Self {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), "settings unreadable, using defaults: {e}");
                Self::default()
            }),
            Err(_) => Self::default(),
        }
    }

    /// Writes the settings to `path` (through a temporary file, so a crash keeps the old ones).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let fail = |e: std::io::Error| format!("cannot save the settings to {}: {e}", path.display());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let partial = path.with_extension("json.partial");
        std::fs::write(&partial, serde_json::to_string_pretty(self).expect("settings serialise")).map_err(fail)?;
        std::fs::rename(&partial, path).map_err(fail)
    }

    /// Whether going from `self` to `other` needs the models reloaded: another model, backend,
    /// voice, speech model or audio device. The per-turn settings ([`Settings::turn`]) and the
    /// theme need no reload.
    pub fn needs_reload(&self, other: &Self) -> bool {
        let load = |s: &Self| {
            let speech = (s.voice.clone(), s.voice_rate, s.stt.clone(), s.stt_language.clone());
            let devices = (s.input_device.clone(), s.output_device.clone());
            (s.model.clone(), s.backend, speech, devices)
        };
        load(self) != load(other) || self.remote() != other.remote()
    }

    /// Whether going from `self` to `other` changes what the next turns use ([`Settings::turn`]).
    pub fn turn_changed(&self, other: &Self) -> bool {
        let key = |t: TurnSettings| (t.sampling.temperature.to_bits(), t.system, t.speak);
        key(self.turn()) != key(other.turn())
    }

    /// What the assistant's next turns use: temperature, system prompt, and whether replies are
    /// spoken.
    pub fn turn(&self) -> TurnSettings {
        TurnSettings {
            sampling: Sampling { temperature: self.temperature, ..Sampling::default() },
            system: self.system_prompt.clone(),
            speak: self.voice_output,
        }
    }

    /// Whether going from `self` to `other` changes how the OpenAI API is served.
    pub fn serving_changed(&self, other: &Self) -> bool {
        (self.serve_api, self.serve_port) != (other.serve_api, other.serve_port)
    }

    /// The remote engine, when a URL is set.
    pub fn remote(&self) -> Option<RemoteConfig> {
        let given = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(String::from);
        Some(RemoteConfig {
            url: given(&self.remote_url)?,
            model: given(&self.remote_model),
            api_key: given(&self.remote_api_key),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The temperature, the system prompt and voice output are per-turn: changing them (as the
    /// tray's Voice output toggle does) reloads nothing, and the next turns get them; nor does the
    /// theme. The model, the backend, the voice, the speech model and the audio devices are
    /// loaded: changing one reloads.
    #[test]
    fn only_what_is_loaded_needs_a_reload() {
        let old = Settings::default();
        let tuned = Settings {
            temperature: 0.7,
            system_prompt: "Be brief.".into(),
            voice_output: false,
            theme: Theme::Dark,
            ..old.clone()
        };
        assert!(!old.needs_reload(&tuned) && old.turn_changed(&tuned));
        assert_eq!(tuned.turn().sampling.temperature, 0.7);
        assert_eq!((tuned.turn().system.as_str(), tuned.turn().speak), ("Be brief.", false));
        for loaded in [
            Settings { model: Some("other.gguf".into()), ..old.clone() },
            Settings { backend: BackendChoice::Cpu, ..old.clone() },
            Settings { voice: "espeak:en-us".into(), ..old.clone() },
            Settings { stt: "base".into(), ..old.clone() },
            Settings { input_device: Some("USB microphone".into()), ..old.clone() },
            Settings { output_device: Some("Headphones".into()), ..old.clone() },
            Settings { remote_url: Some("http://127.0.0.1:9/v1".into()), ..old.clone() },
        ] {
            assert!(old.needs_reload(&loaded), "{loaded:?}");
        }
    }
}
