// Promo codes: list (deleted ones too, with redemptions and limit), create,
// delete (a soft delete: payments that used it keep showing it).
import React from 'react';
import {
    List, Datagrid, TextField, NumberField, Create, SimpleForm, TextInput, NumberInput,
    DateTimeInput, required, DeleteWithConfirmButton, FunctionField, useRecordContext,
} from 'react-admin';
import { DateTimeField } from '../common/format';
import { exportForSpreadsheets } from '../common/exporter';

const DeleteLive = () => {
    const record = useRecordContext();
    return record && !record.deleted_at ? <DeleteWithConfirmButton mutationMode="pessimistic" /> : null;
};

const filters = [
    <TextInput key="code" source="code@ilike" label="resources.admin_promo_codes.fields.code" alwaysOn />,
];

export const PromoCodeList = () => (
    <List sort={{ field: 'created_at', order: 'DESC' }} filters={filters} exporter={exportForSpreadsheets}>
        <Datagrid bulkActionButtons={false}>
            <TextField source="code" />
            <NumberField source="percent" />
            <DateTimeField source="valid_from" />
            <DateTimeField source="valid_until" />
            <TextField source="tariff_code" />
            <FunctionField source="redemptions" render={r => (r.max_redemptions ? `${r.redemptions} / ${r.max_redemptions}` : r.redemptions)} />
            <DateTimeField source="deleted_at" />
            <DeleteLive />
        </Datagrid>
    </List>
);

export const PromoCodeCreate = () => (
    <Create redirect="list">
        <SimpleForm>
            <TextInput source="code" validate={required()} />
            <NumberInput source="percent" validate={required()} />
            <DateTimeInput source="valid_from" />
            <DateTimeInput source="valid_until" validate={required()} />
            <NumberInput source="max_redemptions" />
            <TextInput source="tariff_code" />
        </SimpleForm>
    </Create>
);

export default { list: PromoCodeList, create: PromoCodeCreate };
