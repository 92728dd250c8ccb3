/**
 * @module The message box: it grows with its text (up to a share of the screen), says plainly
 * when a paste was cut to the message limit, and holds an edit of the last question until it
 * is sent or cancelled.
 */

/** The box and the lines around it that the composer owns. */
export interface ComposerParts {
  prompt: HTMLTextAreaElement;
  /** Under the box: what happened to a paste, or how much room is left. */
  lengthNote: HTMLElement;
  /** Above the box while an edit is pending, with its Cancel button. */
  editing: HTMLElement;
  cancelEdit: HTMLButtonElement;
  say(text: string): void;
}

const n = (v: number) => v.toLocaleString("en");

/** The composer over `parts`. */
export function createComposer(parts: ComposerParts) {
  const { prompt, lengthNote, editing, cancelEdit, say } = parts;
  const max = prompt.maxLength > 0 ? prompt.maxLength : 8192;
  let draft: string | null = null; // what was in the box before an edit began
  let cut = "";

  function grow(): void {
    // Measured from its natural height; CSS caps it (max-height), and it scrolls beyond.
    prompt.style.height = "auto";
    prompt.style.height = `${prompt.scrollHeight + 2}px`;
  }
  function note(): void {
    const left = max - prompt.value.length;
    lengthNote.textContent =
      cut || (left < 500 ? `${n(prompt.value.length)} of ${n(max)} characters.` : "");
    lengthNote.hidden = lengthNote.textContent === "";
  }

  prompt.addEventListener("input", () => {
    if (cut && prompt.value.length < max) cut = "";
    grow();
    note();
  });
  prompt.addEventListener("paste", (e) => {
    const text = e.clipboardData?.getData("text/plain") ?? "";
    const room = max - prompt.value.length + (prompt.selectionEnd - prompt.selectionStart);
    if (text.length <= room) return;
    // The browser keeps the first `room` characters (maxlength); say what was left out.
    cut = `The paste was ${n(text.length)} characters, more than a message can hold (${n(max)}), so its last ${n(text.length - room)} were left out.`;
    say(cut);
  });

  function endEdit(): void {
    draft = null;
    editing.hidden = true;
  }
  cancelEdit.addEventListener("click", () => composer.cancelEdit());

  const composer = {
    /** True while the box holds an edit of the last question. */
    get editing(): boolean {
      return draft !== null;
    },
    /** Puts `text` (the last question) in the box to be changed and sent again. */
    beginEdit(text: string): void {
      if (draft === null) draft = prompt.value;
      editing.hidden = false;
      composer.set(text);
      prompt.focus();
      prompt.setSelectionRange(text.length, text.length);
      say("Editing your last question: Send replaces it and its answer, Escape cancels.");
    },
    /** Drops the edit and gives back what was in the box before. */
    cancelEdit(): void {
      if (draft === null) return;
      const before = draft;
      endEdit();
      composer.set(before);
      prompt.focus();
      say("Edit cancelled.");
    },
    /** The edit was sent. */
    sent(): void {
      endEdit();
    },
    /** Replaces the box's text (and sizes the box to it). */
    set(text: string): void {
      prompt.value = text;
      cut = "";
      grow();
      note();
    },
  };
  return composer;
}
