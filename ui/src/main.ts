// Murmur's windows: the chat (main) and the quick-query popup (`?quick`). Everything goes
// through the core's assistant: commands out via IPC, its events in via `assistant` events.
// Model text only reaches the DOM through the safe Markdown renderer or as text nodes.
import { getCurrentWindow } from "@tauri-apps/api/window";
import { commands, events } from "./bindings";
import { renderReply } from "./markdown";
import { captureShortcut } from "./shortcut";
import { applyTheme } from "./theme";
import type {
  CatalogModel,
  ConversationInfo as Conversation,
  Event as AssistantEvent,
  ExportFormat,
  SavedMessage,
  Settings,
  Status,
  VoiceInfo,
} from "./bindings";

const $ = <T extends HTMLElement>(sel: string) => document.querySelector<T>(sel)!;
const log = $("#log");
const input = $<HTMLInputElement>("#question");
const stateBadge = $("#state");
const statusLine = $("#status");
const talk = $<HTMLButtonElement>("#talk");
const level = $("#level");
const quick = new URLSearchParams(location.search).has("quick");
document.body.classList.toggle("quick", quick);

/** The reply bubbles being streamed, by turn. */
const replies = new Map<number, { el: HTMLElement; text: string }>();
/** The conversation on screen, once it is saved or opened (what Export exports). */
let openId: number | null = null;

function setOpen(id: number | null) {
  openId = id;
  $("#export").hidden = quick || id === null;
}

function bubble(role: "user" | "assistant" | "error" | "notice", text = ""): HTMLElement {
  const el = document.createElement("div");
  el.className = `msg ${role}`;
  if (role === "assistant") el.appendChild(renderReply(text));
  else el.textContent = text;
  log.appendChild(el);
  log.scrollTop = log.scrollHeight;
  return el;
}

function showError(e: unknown) {
  bubble("error", String(e));
}

/** Awaits a command; a failure shows in the chat, and gives `undefined`. */
async function call<T>(command: Promise<T>): Promise<T | undefined> {
  try {
    return await command;
  } catch (e) {
    showError(e);
    return undefined;
  }
}

function onAssistant(e: AssistantEvent) {
  switch (e.type) {
    case "state":
      stateBadge.dataset.state = e.state;
      stateBadge.textContent = e.state;
      talk.classList.toggle("live", e.state === "listening");
      if (e.state !== "listening") level.style.width = "0";
      break;
    case "level":
      level.style.width = `${Math.min(100, Math.sqrt(e.rms) * 300)}%`;
      break;
    case "question": {
      const el = bubble("user", e.text);
      if (e.spoken) el.classList.add("spoken");
      break;
    }
    case "token": {
      let reply = replies.get(e.turn);
      if (!reply) {
        reply = { el: bubble("assistant"), text: "" };
        // Screen readers wait for the whole reply instead of reading every token.
        reply.el.setAttribute("aria-busy", "true");
        replies.set(e.turn, reply);
      }
      reply.text += e.text;
      // A reasoning block the user opened stays open as the reply grows.
      const open = reply.el.querySelector<HTMLDetailsElement>("details.reasoning")?.open ?? false;
      reply.el.replaceChildren(renderReply(reply.text, open));
      log.scrollTop = log.scrollHeight;
      break;
    }
    case "reply": {
      const reply = replies.get(e.turn);
      if (reply && e.stop === "cancelled") reply.el.classList.add("stopped");
      reply?.el.setAttribute("aria-busy", "false");
      replies.delete(e.turn);
      break;
    }
    case "notice":
      bubble("notice", e.message);
      break;
    case "error":
      bubble("error", e.message);
      break;
  }
}

function showStatus(s: Status) {
  statusLine.dataset.kind = s.kind;
  statusLine.textContent = s.kind === "loading" ? s.text : s.kind === "ready" ? `ready · ${s.text}` : s.text;
  statusLine.title = s.text;
  // With a remote engine, the way back to the local model is one click away.
  call(commands.getSettings()).then((settings) => {
    $("#use-local").hidden = !settings?.remote_url;
  });
}

$("#use-local").addEventListener("click", () => call(commands.useLocalModel()));

async function refreshHistory() {
  if (quick) return;
  const query = $<HTMLInputElement>("#search").value;
  const list = await call(commands.conversations(query || null));
  const ul = $("#conversations");
  ul.replaceChildren();
  for (const c of list ?? []) {
    const li = document.createElement("li");
    const open = document.createElement("button");
    open.className = "open";
    open.textContent = c.title;
    open.title = new Date(c.updated_ms).toLocaleString();
    open.addEventListener("click", () => openConversation(c.id));
    const rename = document.createElement("button");
    rename.className = "rename";
    rename.textContent = "✎";
    rename.title = "Rename this conversation";
    rename.setAttribute("aria-label", `Rename “${c.title}”`);
    rename.addEventListener("click", () => startRename(li, c));
    const del = document.createElement("button");
    del.className = "delete";
    del.textContent = "✕";
    del.title = "Delete this conversation";
    del.setAttribute("aria-label", `Delete “${c.title}”`);
    del.addEventListener("click", async () => {
      await call(commands.deleteConversation(c.id));
      if (openId === c.id) setOpen(null);
      refreshHistory();
    });
    li.append(open, rename, del);
    ul.appendChild(li);
  }
}

/** Turns a conversation's entry into a title field: Enter saves it, Esc or leaving keeps the old. */
function startRename(li: HTMLElement, c: Conversation) {
  const field = document.createElement("input");
  field.className = "rename-field";
  field.value = c.title;
  field.setAttribute("aria-label", "New title");
  let done = false;
  const finish = async (save: boolean) => {
    if (done) return;
    done = true;
    if (save && field.value.trim() && field.value.trim() !== c.title) {
      await call(commands.renameConversation(c.id, field.value));
    }
    refreshHistory();
  };
  field.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") finish(true);
    if (ev.key === "Escape") finish(false);
  });
  field.addEventListener("blur", () => finish(false));
  li.replaceChildren(field);
  field.focus();
  field.select();
}

async function openConversation(id: number) {
  const messages = await call(commands.openConversation(id));
  if (!messages) return;
  setOpen(id);
  log.replaceChildren();
  for (const m of messages) bubble(m.role === "user" ? "user" : "assistant", m.content);
}

$<HTMLFormElement>("#ask").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const question = input.value.trim();
  if (!question) return;
  input.value = "";
  call(commands.ask(question));
});
$("#stop").addEventListener("click", () => call(commands.stop()));
talk.addEventListener("pointerdown", (ev) => {
  talk.setPointerCapture(ev.pointerId);
  call(commands.press());
});
talk.addEventListener("pointerup", () => call(commands.release()));
// From the keyboard: hold Space while the button is focused.
let spaceHeld = false;
talk.addEventListener("keydown", (ev) => {
  if (ev.key !== " ") return;
  ev.preventDefault();
  if (ev.repeat || spaceHeld) return;
  spaceHeld = true;
  call(commands.press());
});
const letGo = () => {
  if (!spaceHeld) return;
  spaceHeld = false;
  call(commands.release());
};
talk.addEventListener("keyup", (ev) => {
  if (ev.key !== " ") return;
  ev.preventDefault();
  letGo();
});
talk.addEventListener("blur", letGo);
$("#new-chat").addEventListener("click", async () => {
  await call(commands.newChat());
  log.replaceChildren();
  replies.clear();
  setOpen(null);
});
// A link in a reply opens in the browser when clicked (or Enter on it), never on its own.
function openLink(ev: Event) {
  const link = (ev.target as HTMLElement).closest<HTMLElement>(".link");
  if (link?.dataset.href) call(commands.openLink(link.dataset.href));
}
log.addEventListener("click", openLink);
log.addEventListener("keydown", (ev) => {
  if (ev.key === "Enter") openLink(ev);
});
$<HTMLSelectElement>("#export").addEventListener("change", async (ev) => {
  const select = ev.target as HTMLSelectElement;
  const format = select.value;
  select.value = "";
  if (!format || openId === null) return;
  const path = await call(commands.exportConversation(openId, format as ExportFormat));
  if (path) bubble("notice", `Exported to ${path}`);
});
$("#search").addEventListener("input", refreshHistory);

const dialog = $<HTMLDialogElement>("#settings");
const form = $<HTMLFormElement>("#settings-form");
const picker = $<HTMLSelectElement>("#catalog");
let catalog: CatalogModel[] = [];

/// Fills the model picker from the catalog, selecting the model of `path` (null: the default);
/// a path outside the catalog goes to the own-file field.
async function showCatalog(path: string | null): Promise<void> {
  catalog = (await call(commands.catalog())) ?? [];
  const chosen = catalog.find((m) => (path === null ? m.default : m.path === path));
  picker.replaceChildren(
    ...catalog.map((m) => {
      const size = m.size >= 1e9 ? `${(m.size / 1e9).toFixed(2)} GB` : `${Math.round(m.size / 1e6)} MB`;
      const state = m.installed ? "" : " — not installed";
      const option = new Option(`${m.name} (${m.family} ${m.quantization}, ${size})${state}`, m.id);
      option.title = m.description;
      return option;
    }),
  );
  picker.value = chosen?.id ?? catalog.find((m) => m.default)?.id ?? "";
  const own = form.elements.namedItem("model") as HTMLInputElement;
  own.value = chosen || path === null ? "" : path;
  showPicked();
}

/// Fills a device list: the system's default first, then `names`, selecting `current` (kept
/// even when it is not plugged in now).
function showDevices(select: HTMLSelectElement, names: string[], current: string | null) {
  const all = current && !names.includes(current) ? [current, ...names] : names;
  select.replaceChildren(new Option("the system's default", ""), ...all.map((n) => new Option(n, n)));
  select.value = current ?? "";
}

/// Fills the voice list, selecting `current` (kept even when this machine does not list it).
async function showVoices(current: string): Promise<void> {
  const voices = (await call(commands.voices())) ?? [];
  if (!voices.some((v) => v.id === current)) voices.unshift({ id: current, description: current, installed: true });
  $<HTMLSelectElement>("#voices").replaceChildren(
    ...voices.map((v) => new Option(`${v.description}${v.installed ? "" : " (not installed)"}`, v.id)),
  );
  $<HTMLSelectElement>("#voices").value = current;
}

/// Offers the Download button for a picked model that is not installed.
function showPicked(): void {
  const m = catalog.find((c) => c.id === picker.value);
  const busy = !$("#cancel-download").hidden;
  $("#download-model").hidden = busy || !m || m.installed;
}
picker.addEventListener("change", showPicked);
$("#download-model").addEventListener("click", async () => {
  $("#download-text").textContent = "starting…";
  try {
    await commands.downloadModel(picker.value);
    $("#download-model").hidden = true;
    $<HTMLProgressElement>("#download-progress").hidden = false;
    $("#cancel-download").hidden = false;
  } catch (e) {
    $("#download-text").textContent = String(e);
  }
});
$("#cancel-download").addEventListener("click", () => call(commands.cancelDownload()));
$("#choose-model").addEventListener("click", async () => {
  const path = await call(commands.chooseModelFile());
  if (path) (form.elements.namedItem("model") as HTMLInputElement).value = path;
});
events.downloadEvent.listen(async (e) => {
  const d = e.payload;
  const bar = $<HTMLProgressElement>("#download-progress");
  const name = catalog.find((m) => m.id === d.id)?.name ?? d.id;
  if (d.kind === "progress") {
    bar.value = d.fraction;
    $("#download-text").textContent = `${name}: ${d.text} (${Math.round(d.fraction * 100)} %)`;
    return;
  }
  bar.hidden = true;
  $("#cancel-download").hidden = true;
  $("#download-text").textContent = d.kind === "finished" ? `${name} is installed` : d.message;
  const picked = picker.value;
  await showCatalog(catalog.find((m) => m.id === picked)?.path ?? null);
});

$("#open-settings").addEventListener("click", async () => {
  const s = await call(commands.getSettings());
  if (!s) return;
  const f = form.elements as unknown as Record<string, HTMLInputElement>;
  await showCatalog(s.model);
  f.backend.value = s.backend;
  f.voice_output.checked = s.voice_output;
  await showVoices(s.voice);
  f.voice_rate.value = String(s.voice_rate);
  const stt = (await call(commands.speechModels())) ?? [s.stt];
  $<HTMLSelectElement>("#speech-models").replaceChildren(...stt.map((n) => new Option(n, n)));
  f.stt.value = s.stt;
  f.stt_language.value = s.stt_language;
  const devices = (await call(commands.audioDevices())) ?? { inputs: [], outputs: [] };
  showDevices($<HTMLSelectElement>("#inputs"), devices.inputs, s.input_device);
  showDevices($<HTMLSelectElement>("#outputs"), devices.outputs, s.output_device);
  f.hotkey.value = s.hotkey;
  f.quick_hotkey.value = s.quick_hotkey;
  f.theme.value = s.theme;
  f.temperature.value = String(s.temperature);
  f.system_prompt.value = s.system_prompt;
  f.remote_url.value = s.remote_url ?? "";
  f.remote_model.value = s.remote_model ?? "";
  f.remote_api_key.value = s.remote_api_key ?? "";
  f.serve_api.checked = s.serve_api;
  f.serve_port.value = String(s.serve_port);
  $("#settings-error").hidden = true;
  // Not showModal(): WebKit leaves the top layer out of screenshots, and the pane is shown
  // over the chat by its own styles.
  dialog.show();
  form.querySelector<HTMLInputElement>("input")!.focus();
});
dialog.addEventListener("keydown", (ev) => {
  if (ev.key === "Escape") dialog.close();
});
form.addEventListener("submit", async (ev) => {
  if ((ev.submitter as HTMLButtonElement | null)?.value !== "save") return;
  ev.preventDefault();
  const f = form.elements as unknown as Record<string, HTMLInputElement>;
  const picked = catalog.find((m) => m.id === picker.value);
  const own = f.model.value.trim();
  if (!own && picked && !picked.installed) {
    const err = $("#settings-error");
    err.textContent = `${picked.name} is not installed yet: download it first, or pick another model.`;
    err.hidden = false;
    return;
  }
  const settings: Settings = {
    model: own || (picked && !picked.default ? picked.path : null),
    backend: f.backend.value as Settings["backend"],
    voice_output: f.voice_output.checked,
    voice: f.voice.value,
    voice_rate: Number(f.voice_rate.value),
    stt: f.stt.value,
    stt_language: f.stt_language.value,
    hotkey: f.hotkey.value.trim(),
    quick_hotkey: f.quick_hotkey.value.trim(),
    temperature: Number(f.temperature.value),
    system_prompt: f.system_prompt.value,
    remote_url: f.remote_url.value.trim() || null,
    remote_model: f.remote_model.value.trim() || null,
    remote_api_key: f.remote_api_key.value.trim() || null,
    serve_api: f.serve_api.checked,
    serve_port: Number(f.serve_port.value) || 8080,
    theme: f.theme.value as Settings["theme"],
    input_device: f.input_device.value || null,
    output_device: f.output_device.value || null,
  };
  try {
    await commands.setSettings(settings);
    applyTheme(settings.theme);
    dialog.close();
  } catch (e) {
    const err = $("#settings-error");
    err.textContent = String(e);
    err.hidden = false;
  }
});

if (quick) {
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") getCurrentWindow().hide();
  });
  input.focus();
}

events.assistantEvent.listen((e) => onAssistant(e.payload));
// The status is asked for only once its listener is in place, so a change in between is
// not lost; a status event that arrives before the answer is newer than it.
let statusHeard = false;
events.statusEvent.listen((e) => {
  statusHeard = true;
  showStatus(e.payload);
})
  .then(() => call(commands.status()))
  .then((s) => s && !statusHeard && showStatus(s));
// A saved exchange names its conversation, the one on screen; a rename names none.
events.historyEvent.listen((e) => {
  if (typeof e.payload === "number") setOpen(e.payload);
  refreshHistory();
});
refreshHistory();
for (const field of document.querySelectorAll<HTMLInputElement>("input.shortcut")) captureShortcut(field);
call(commands.getSettings()).then((s) => applyTheme(s?.theme ?? "system"));
