// Murmur's chat window: sends the question to the core through Tauri IPC and renders the
// answer as its tokens stream in. Text only ever enters the DOM as text nodes.
import { Channel, invoke } from "@tauri-apps/api/core";

const log = document.querySelector<HTMLElement>("#log")!;
const form = document.querySelector<HTMLFormElement>("#ask")!;
const input = document.querySelector<HTMLInputElement>("#question")!;
const stop = document.querySelector<HTMLButtonElement>("#stop")!;
const status = document.querySelector<HTMLElement>("#status")!;

function bubble(role: "user" | "assistant" | "error", text: string): HTMLElement {
  const el = document.createElement("div");
  el.className = `msg ${role}`;
  el.textContent = text;
  log.appendChild(el);
  log.scrollTop = log.scrollHeight;
  return el;
}

function setStatus(state: string, text: string) {
  status.dataset.state = state;
  status.textContent = text;
}

async function waitForModel() {
  try {
    const info = await invoke<string>("model_status");
    setStatus("idle", info);
  } catch (e) {
    setStatus("error", String(e));
  }
}

form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const question = input.value.trim();
  if (!question) return;
  input.value = "";
  bubble("user", question);
  const answer = bubble("assistant", "");
  const tokens = new Channel<string>();
  tokens.onmessage = (text) => {
    answer.textContent += text;
    log.scrollTop = log.scrollHeight;
  };
  setStatus("thinking", "thinking…");
  stop.disabled = false;
  try {
    await invoke("ask", { question, onToken: tokens });
    setStatus("idle", "ready");
  } catch (e) {
    answer.remove();
    bubble("error", String(e));
    setStatus("error", "error");
  } finally {
    stop.disabled = true;
  }
});

stop.addEventListener("click", () => invoke("stop"));

waitForModel();
