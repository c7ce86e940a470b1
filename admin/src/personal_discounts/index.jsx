// Personal discounts: one per user; set (create or replace) and remove.
import React from 'react';
import {
    List, Datagrid, TextField, NumberField, DateField, Create, SimpleForm, TextInput, NumberInput,
    DateTimeInput, required, DeleteWithConfirmButton,
} from 'react-admin';

export const PersonalDiscountList = () => (
    <List sort={{ field: 'updated_at', order: 'DESC' }} filters={[<TextInput key="u" source="user_id" alwaysOn />]}>
        <Datagrid bulkActionButtons={false}>
            <TextField source="user_id" />
            <NumberField source="percent" />
            <DateField source="valid_until" showTime />
            <DateField source="updated_at" showTime />
            <DeleteWithConfirmButton mutationMode="pessimistic" />
        </Datagrid>
    </List>
);

export const PersonalDiscountCreate = () => (
    <Create redirect="list">
        <SimpleForm>
            <TextInput source="user_id" validate={required()} />
            <NumberInput source="percent" validate={required()} />
            <DateTimeInput source="valid_until" />
        </SimpleForm>
    </Create>
);

export default { list: PersonalDiscountList, create: PersonalDiscountCreate };
