/* untrack(value): takes a value, and everything it holds, out of the cycle collector's sight.

A customer's state is immutable: each part is built from parts that existed before it, and its
mappings are never changed after they are built, so it can never be part of a reference cycle.
Reference counting frees it; the collector would only walk it, again and again, while it sits in
the state cache (some 60 objects per customer: seconds of a worker's time under load, in pauses
of up to a second). Python has no way to say so from Python code, hence this function.

It stops at objects the collector does not track (already untracked: what the state shares with
the one before it) and never enters types, modules, functions or frames. Returns how many
objects it took out. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>

typedef struct {
    PyObject **items;
    Py_ssize_t len, cap;
} Stack;

static int is_shared(PyObject *o) {
    return PyType_Check(o) || PyModule_Check(o) || PyFunction_Check(o) || PyMethod_Check(o) ||
           PyCFunction_Check(o) || PyCell_Check(o) || PyFrame_Check(o) || PyCode_Check(o) ||
           PyGen_Check(o) || PyCoro_CheckExact(o);
}

static int push(PyObject *o, void *arg) {
    Stack *s = (Stack *)arg;
    if (o == NULL || !PyObject_GC_IsTracked(o) || is_shared(o)) return 0;
    if (s->len == s->cap) {
        Py_ssize_t cap = s->cap ? s->cap * 2 : 64;
        PyObject **items = PyMem_Realloc(s->items, cap * sizeof(PyObject *));
        if (items == NULL) return -1;
        s->items = items;
        s->cap = cap;
    }
    s->items[s->len++] = o;
    return 0;
}

static PyObject *untrack(PyObject *module, PyObject *value) {
    Stack s = {NULL, 0, 0};
    Py_ssize_t count = 0;
    int failed = push(value, &s);
    while (!failed && s.len) {
        PyObject *o = s.items[--s.len];
        if (!PyObject_GC_IsTracked(o)) continue;  /* pushed twice */
        PyObject_GC_UnTrack(o);
        count++;
        traverseproc traverse = Py_TYPE(o)->tp_traverse;
        failed = traverse != NULL && traverse(o, push, &s) < 0;
    }
    PyMem_Free(s.items);
    return failed ? PyErr_NoMemory() : PyLong_FromSsize_t(count);
}

static PyMethodDef methods[] = {
    {"untrack", untrack, METH_O, "Take an immutable value out of the cycle collector's sight."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_acyclic", NULL, -1, methods};

PyMODINIT_FUNC PyInit__acyclic(void) { return PyModule_Create(&module); }
