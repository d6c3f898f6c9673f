// SessionStore.load: a stored transcript back as entries, in order, from one snapshot.
import type { StoreDb } from '../store/db.js';
import { getSessionHead } from '../store/sessions.js';
import { getSidecars } from '../store/sidecars.js';
import { parseLines, type SdkSessionEntry } from './entries.js';
import { findSdkKey } from './keyMap.js';
import { parseSdkKey } from './keys.js';
import { readChunks } from './storedChunks.js';

/**
 * The committed lines of the transcript as entries, or null when the key was never
 * written (or was deleted). Lines of a turn still running are not included. Entries are
 * deep-equal to those appended; lines the worker's CLI wrote are returned as parsed.
 */
export async function loadSdkEntries(db: StoreDb, tenantId: string, key: unknown): Promise<SdkSessionEntry[] | null> {
  const k = parseSdkKey(key);
  return db.transaction(
    async (tx) => {
      const mapping = await findSdkKey(tx, tenantId, k.projectKey, k.sessionId);
      if (!mapping) return null;
      const head = await getSessionHead(tx, mapping.conversationId, k.fileId);
      if (!head || head.committedLineCount === 0) return null;
      const entries: SdkSessionEntry[] = [];
      for await (const chunk of readChunks(tx, mapping.conversationId, k.fileId, 0, head.committedLineCount)) {
        for (const e of parseLines(chunk.raw, k.fileId, chunk.firstLine)) entries.push(e);
      }
      // A subagent's `.meta.json` that a worker stored: last, as the SDK's own
      // `agent_metadata` entry, which the SDK writes back as that file on resume.
      if (k.subpath !== undefined) {
        const meta = sidecarEntry((await getSidecars(tx, mapping.conversationId, [k.fileId])).get(k.fileId));
        if (meta) entries.push(meta);
      }
      return entries;
    },
    { isolationLevel: 'repeatable read', accessMode: 'read only' },
  );
}

/** A stored sidecar as an `agent_metadata` entry; undefined when there is none or it is not a JSON object. */
function sidecarEntry(content: string | undefined): SdkSessionEntry | undefined {
  if (content === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(content);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
    return { ...(value as Record<string, unknown>), type: 'agent_metadata' } as SdkSessionEntry;
  } catch {
    return undefined;
  }
}
