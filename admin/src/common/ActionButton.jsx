// A button that asks for confirmation, then calls one api function; the
// server's answer (or its error) is what the admin sees.
import React, { useState } from 'react';
import { Button, Confirm, useNotify, useRefresh, useTranslate } from 'react-admin';

export default function ActionButton({ label, title, content, run, children, disabled }) {
    const [open, setOpen] = useState(false);
    const [busy, setBusy] = useState(false);
    const notify = useNotify();
    const refresh = useRefresh();
    const t = useTranslate();
    const confirm = async () => {
        setBusy(true);
        try {
            await run();
            notify('billing.common.done', { type: 'success' });
            refresh();
        } catch (e) {
            notify(e.message, { type: 'error', multiLine: true });
        } finally {
            setBusy(false);
            setOpen(false);
        }
    };
    return (
        <>
            <Button label={label} onClick={e => { e.stopPropagation(); setOpen(true); }} disabled={disabled || busy} />
            <Confirm
                isOpen={open}
                loading={busy}
                title={title}
                content={children || t(content)}
                onConfirm={confirm}
                onClose={() => setOpen(false)}
                confirm="billing.common.confirm"
            />
        </>
    );
}
