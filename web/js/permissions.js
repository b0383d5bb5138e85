// Permission names as people read them, and what each allows. Pure: used by the views and the reducer alike.

export const PERMISSION_LABEL = { view: 'View only', respond: 'Can respond', owner: 'Owner' };

export function canRespond(permission) {
  return permission === 'respond' || permission === 'owner';
}
