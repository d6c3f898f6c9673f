// SessionStore.load: a stored transcript back as entries, in order, from one snapshot.
import type { StoreDb } from '../store/db.js';
import { getSessionHead } from '../store/sessions.js';
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
      return entries;
    },
    { isolationLevel: 'repeatable read', accessMode: 'read only' },
  );
}
