// The panel is served by nginx under / with the API under /api/ (one origin);
// `npm run dev` proxies /api/ to a PostgREST given by BILLING_API.
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

export default defineConfig({
    plugins: [react()],
    build: { outDir: 'dist', sourcemap: false, chunkSizeWarningLimit: 2000 },
    server: {
        proxy: {
            '/api': {
                target: process.env.BILLING_API || 'http://127.0.0.1:13000',
                rewrite: path => path.replace(/^\/api/, ''),
            },
        },
    },
});
