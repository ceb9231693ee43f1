// The shapes the core sends and takes (see murmur-core's assistant::Event, history and the
// app's settings).

export type State = "idle" | "listening" | "transcribing" | "thinking" | "speaking";

export type AssistantEvent =
  | { type: "state"; state: State }
  | { type: "question"; turn: number; text: string; spoken: boolean }
  | { type: "level"; rms: number }
  | { type: "token"; turn: number; text: string }
  | { type: "sentence"; turn: number; text: string }
  | { type: "reply"; turn: number; text: string; stop: string }
  | { type: "interrupted"; turn: number; unspoken_seconds: number }
  | { type: "done"; turn: number; timeline: Record<string, unknown> }
  | { type: "notice"; message: string }
  | { type: "error"; turn: number | null; message: string };

export type Status = { kind: "loading" | "ready" | "failed"; text: string };

export interface Conversation {
  id: number;
  title: string;
  created_ms: number;
  updated_ms: number;
}

export interface SavedMessage {
  role: string;
  content: string;
  created_ms: number;
}

export interface Settings {
  model: string | null;
  backend: "auto" | "cpu" | "gpu";
  voice_output: boolean;
  voice: string;
  voice_rate: number;
  stt: string;
  stt_language: string;
  hotkey: string;
  quick_hotkey: string;
  temperature: number;
  system_prompt: string;
  remote_url: string | null;
  remote_model: string | null;
  remote_api_key: string | null;
  serve_api: boolean;
  serve_port: number;
  theme: "system" | "light" | "dark";
  input_device: string | null;
  output_device: string | null;
}

export interface AudioDevices {
  inputs: string[];
  outputs: string[];
}

export interface VoiceInfo {
  id: string;
  description: string;
  installed: boolean;
}

export interface CatalogModel {
  id: string;
  name: string;
  description: string;
  family: string;
  quantization: string;
  size: number;
  path: string;
  installed: boolean;
  default: boolean;
}

export type DownloadEvent =
  | { kind: "progress"; id: string; text: string; fraction: number }
  | { kind: "finished"; id: string }
  | { kind: "failed"; id: string; message: string };
