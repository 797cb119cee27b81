// The seed's two browser examples, run by Node's own fetch and FormData. The only additions
// are the lines marked HARNESS, which stand in for the page: a file input, its file, the console.
import { readFileSync } from "node:fs"; // HARNESS
const fileInput = { files: [new File([readFileSync("my-photo.jpg")], "my-photo.jpg", { type: "image/jpeg" })] }; // HARNESS
const results = []; // HARNESS
const console = { log: (...a) => results.push(["log", ...a]), error: (...a) => results.push(["error", String(a[0]), String(a[1])]) }; // HARNESS
process.on("exit", () => process.stdout.write(JSON.stringify(results))); // HARNESS

const formData = new FormData();
formData.append('file', fileInput.files[0]);
formData.append('album', 'my-project');
fetch('https://imglink.io/api/v1/upload', {
method: 'POST',
headers: {
'Authorization': 'Bearer YOUR_API_KEY'
},
body: formData
})
.then(response => response.json())
.then(data => {
console.log('Upload successful:', data);
});

async function uploadImage(file) {
const formData = new FormData();
formData.append('file', file);
try {
const response = await fetch('https://imglink.io/api/v1/upload', {
method: 'POST',
body: formData
});
const result = await response.json();
if (result.success) {
console.log('Image uploaded:', result.data.links.direct);
return result.data.links.direct;
} else {
console.error('Upload failed:', result.error.message);
}
} catch (error) {
console.error('Network error:', error);
}
}

uploadImage(fileInput.files[0]); // HARNESS
