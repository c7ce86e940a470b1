// Sign-in with a personal admin account against POST /rpc/login.  The server
// is the judge of every token: a 401 (expired, disabled account) signs the
// admin out at once.
import { rpc, describeError, API } from './httpClient';
import { setToken, clearToken, claims } from './token';

export const authProvider = {
    async login({ username, password }) {
        const response = await fetch(`${API}/rpc/login`, {
            method: 'POST',
            headers: { Accept: 'application/json', 'Content-Type': 'application/json' },
            body: JSON.stringify({ email: username, password }),
        });
        const body = await response.json().catch(() => undefined);
        if (!response.ok) {
            throw new Error(describeError(response.status, body));
        }
        setToken(body.token);
    },
    async logout() {
        clearToken();
    },
    async checkAuth() {
        const c = claims();
        if (!c || c.role !== 'billing_admin' || (c.exp && c.exp * 1000 < Date.now())) {
            clearToken();
            throw new Error('billing.auth.signed_out');
        }
    },
    async checkError(error) {
        const status = error && error.status;
        if (status === 401 || (status === 403 && claims()?.role !== 'billing_admin')) {
            clearToken();
            throw new Error('billing.auth.signed_out');
        }
    },
    async getIdentity() {
        const c = claims() || {};
        return { id: c.user, fullName: c.name || c.email };
    },
    async getPermissions() {
        return 'admin';
    },
};

export { rpc };
