import requests
def upload_image(file_path, api_key=None):
    url = 'https://imglink.io/api/v1/upload'
    headers = {}
    if api_key:
        headers['Authorization'] = f'Bearer {api_key}'
    with open(file_path, 'rb') as file:
        files = {'file': file}
        response = requests.post(url, headers=headers, files=files)
    result = response.json()
    if result['success']:
        return result['data']['links']['direct']
    else:
        raise Exception(f"Upload failed: {result['error']['message']}")
# Usage
image_url = upload_image('my-photo.jpg', 'your-api-key')
print(f"Image uploaded: {image_url}")
