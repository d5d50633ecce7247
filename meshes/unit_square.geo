// Unit square [0, 1]^2, unstructured triangles (physinv).
// The same geometry as physinv.fem.gmsh_meshes.unit_square(h).
//
//   gmsh -2 -setnumber lc 0.1 meshes/unit_square.geo -o meshes/unit_square_h0.1.msh
//
// lc is the characteristic length (target edge length, m); -setnumber overrides it.
DefineConstant[ lc = {0.1, Name "Parameters/lc"} ];

Point(1) = {0, 0, 0, lc};
Point(2) = {1, 0, 0, lc};
Point(3) = {1, 1, 0, lc};
Point(4) = {0, 1, 0, lc};

Line(1) = {1, 2};  // y = 0
Line(2) = {2, 3};  // x = 1
Line(3) = {3, 4};  // y = 1
Line(4) = {4, 1};  // x = 0

Curve Loop(1) = {1, 2, 3, 4};
Plane Surface(1) = {1};

Physical Curve("boundary", 1) = {1, 2, 3, 4};
Physical Surface("domain", 2) = {1};

Mesh.Algorithm = 6;           // Frontal-Delaunay
Mesh.MeshSizeFromPoints = 1;
Mesh.MeshSizeExtendFromBoundary = 1;
