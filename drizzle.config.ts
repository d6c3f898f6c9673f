// drizzle-kit: `npx drizzle-kit generate --name <intent>` writes the next SQL migration
// into migrations/ from src/store/schema.ts. Generated files are append-only.
import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'postgresql',
  schema: './src/store/schema.ts',
  out: './migrations',
});
