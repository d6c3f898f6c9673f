// Turning zod issues into messages that name each bad field, for every boundary that
// validates input (run options, enqueued turns).
import type { z } from 'zod';

export function describeIssues(error: z.ZodError): { fields: string[]; lines: string[] } {
  const fields = error.issues.map((i) => i.path.join('.') || '(root)');
  const lines = error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
  return { fields: [...new Set(fields)], lines };
}
