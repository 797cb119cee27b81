<?php
function uploadImage($filePath, $apiKey = null) {
$url = 'https://imglink.io/api/v1/upload';
$headers = [];
if ($apiKey) {
$headers[] = 'Authorization: Bearer ' . $apiKey;
}
$file = new CURLFile($filePath);
$data = ['file' => $file];
$ch = curl_init();
curl_setopt($ch, CURLOPT_URL, $url);
curl_setopt($ch, CURLOPT_POST, true);
curl_setopt($ch, CURLOPT_POSTFIELDS, $data);
curl_setopt($ch, CURLOPT_HTTPHEADER, $headers);
curl_setopt($ch, CURLOPT_RETURNTRANSFER, true);
$response = curl_exec($ch);
curl_close($ch);
$result = json_decode($response, true);
if ($result['success']) {
return $result['data']['links']['direct'];
} else {
throw new Exception('Upload failed: ' . $result['error']['message']);
}
}
// Usage
$imageUrl = uploadImage('my-photo.jpg', 'your-api-key');
echo "Image uploaded: " . $imageUrl;
?>
